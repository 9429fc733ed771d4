// Every failure vdrep can report: the exit codes (errors/exit-codes.ts), the registry of error
// codes and what each means (errors/registry.ts), the classes (errors/classes.ts), and the one
// mapping of anything thrown to an exit code (errors/exit.ts). Import from here.
export * from './errors/exit-codes.js'
export * from './errors/registry.js'
export * from './errors/classes.js'
export * from './errors/exit.js'
