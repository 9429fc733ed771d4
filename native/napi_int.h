// ArgInt: one integer argument of a native call, range-checked before anything acts on it.
#pragma once

#include <node_api.h>
#include <stdint.h>
#include <stdio.h>

/**
 * Reads `v` as an integer in [min, max] into `out`; otherwise throws a RangeError (code
 * EINVAL) naming `what` and returns false. Whole numbers only: 1.5 or NaN is out of range.
 */
inline bool ArgInt(napi_env env, napi_value v, const char* what, int64_t min, int64_t max, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok || !(d >= (double)min) || d > (double)max || d != (double)(int64_t)d) {
    char msg[80];
    snprintf(msg, sizeof msg, "%s is out of range", what);
    napi_throw_range_error(env, "EINVAL", msg);
    return false;
  }
  *out = (int64_t)d;
  return true;
}
