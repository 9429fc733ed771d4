// An empty array that V8 already holds as an array of objects. A new `[]` starts as an array
// of small integers (Smi) and changes kind at its first push of an object; code compiled
// while the arrays it met had changed already checks for the object kind and is thrown away
// ("not a Smi") at the first push into a fresh one. That was the tracker's cold start: its
// warm-up compiled the request path on a scratch stack's long-used queues, and the VM's
// first requests met the real stack's fresh ones (a backend's write queue, a connection's
// reply queue, a socket reader's chunks): the request path, compiled again on the VM's time.
// An array's kind only ever widens, so one born holding an object and emptied stays as wide.

/** An empty array of the object kind (see above); use it where hot code pushes into arrays made rarely. */
export function objectArray<T>(): T[] {
  const a: unknown[] = [null]
  a.length = 0
  return a as T[]
}
