// `push --if-due`: cron runs vdrep every minute; a push happens only when waiting another
// minute could let the replica's age pass the RPO. A push takes its point in time at its
// start, so the replica's age just before the next push completes is about (interval + push
// time); pushing once the age reaches RPO - 1 min - 10% leaves that margin.
// A last sync recorded later than now means the clock went back: the replica's age is unknown,
// and waiting for the clock to catch up could skip pushes for as long as it went back.
export function pushIsDue(lastSyncMs: number, rpoSeconds: number, nowMs = Date.now()): boolean {
  if (lastSyncMs === 0 || lastSyncMs > nowMs) return true
  const margin = 60_000 + rpoSeconds * 100
  return nowMs - lastSyncMs >= rpoSeconds * 1000 - margin
}
