// Worker-thread entry for a local-path target: the receiver runs here, on the other core,
// reading and hashing the replica while the main thread reads and hashes the source.
import {parentPort, workerData, type MessagePort} from 'node:worker_threads'
import {portDuplex} from '../transport/port-stream.js'
import {handleConnection} from './session.js'
import {sessionLine} from './session-log.js'

interface LocalWorkerData {
  root: string
  port: MessagePort
}

const {root, port} = workerData as LocalWorkerData
const stream = portDuplex(port)
await handleConnection(stream, {root, lockAcrossProcesses: true, log: (text, subject) => parentPort?.postMessage({log: sessionLine(text, subject)})})
stream.end()
