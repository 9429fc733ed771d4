// Foreground commands (`track`, `export --nbd`, `test start`) run until SIGTERM or SIGINT. A second
// signal says the clean stop is under way; a third quits at once (exit 130).

/** Resolves at the first SIGTERM or SIGINT. */
export function untilSignal(onFirst: () => void, onSecond: () => void): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0
    const on = (): void => {
      seen++
      if (seen === 1) {
        onFirst()
        resolve()
      } else if (seen === 2) onSecond()
      else process.exit(130)
    }
    process.on('SIGTERM', on)
    process.on('SIGINT', on)
  })
}
