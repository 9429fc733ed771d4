// doc/protocol.md is a spec another implementer codes against: every constant one of its tables
// names (`| \`NAME\` | value ...`) must have that value in the code, every flow-control rule of
// src/core/protocol/flow.ts must be in the doc, and the frame-type tables must match FrameType.
// The rules must also hold together (a client that follows rule 2 stays inside rule 1's lead; a
// queue that follows rule 3 holds a whole lead).
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

import * as flow from '../../../src/core/protocol/flow.js'
import {FRAME_HEADER_SIZE, FrameType, MAX_PAYLOAD, PROTOCOL_VERSION} from '../../../src/core/protocol/frame.js'
import {COMMIT_ID_LENGTH, KEEPALIVE_INTERVAL_MS, MAX_CODECS, MAX_PATH, MAX_STATUS_BATCH} from '../../../src/core/protocol/messages.js'
import {ROOM_INFO_SIZE} from '../../../src/core/protocol/room-messages.js'
import {DEFAULT_TIMEOUT_MS, LEGACY_TIMEOUT_FACTOR, MIN_TIMEOUT_MS} from '../../../src/core/transport/peer-watchdog.js'
import {MAX_RUN_BLOCKS, MAX_RUN_BYTES} from '../../../src/core/protocol/compressed-data.js'
import {MAX_POINTS_LIST, MAX_POINTS_TEXT, MAX_RETENTION_SPEC, MAX_SOURCE_HOST, POINT_ENTRY_SIZE} from '../../../src/core/protocol/points-messages.js'
import {HASH_LENGTH} from '../../../src/core/hash/block-hash.js'
import {MIN_BLOCK_SIZE} from '../../../src/core/psf/header.js'
import {DEFAULT_IDLE_TIMEOUT_MS} from '../../../src/core/receiver/serve-config.js'
import {BLOCK_HASH_ENTRY, CONTROL_HEADER_SIZE, CONTROL_VERSION, MAX_JSON, MAX_REPLY_DATA, MAX_REQUEST_DATA} from '../../../src/core/tracker/control-protocol.js'
import {MAX_READ_BYTES} from '../../../src/core/tracker/freezer.js'

// dist/test/core/protocol -> the repository root
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..')
const doc = fs.readFileSync(path.join(root, 'doc/protocol.md'), 'utf8')

/** The constants the doc may name, by name, from the modules that define them. */
const code: Record<string, number> = {
  ...Object.fromEntries(Object.entries(flow).filter(([, v]) => typeof v === 'number')),
  FRAME_HEADER_SIZE,
  MAX_PAYLOAD,
  PROTOCOL_VERSION,
  MAX_PATH,
  MAX_STATUS_BATCH,
  HASH_LENGTH,
  COMMIT_ID_LENGTH,
  MAX_CODECS,
  MAX_RUN_BYTES,
  MAX_RUN_BLOCKS,
  DEFAULT_IDLE_TIMEOUT_MS,
  KEEPALIVE_INTERVAL_MS,
  ROOM_INFO_SIZE,
  DEFAULT_TIMEOUT_MS,
  MIN_TIMEOUT_MS,
  LEGACY_TIMEOUT_FACTOR,
  CONTROL_HEADER_SIZE,
  CONTROL_VERSION,
  MAX_JSON,
  MAX_REPLY_DATA,
  MAX_READ_BYTES,
  MAX_REQUEST_DATA,
  BLOCK_HASH_ENTRY,
  MAX_RETENTION_SPEC,
  MAX_SOURCE_HOST,
  MAX_POINTS_LIST,
  MAX_POINTS_TEXT,
  POINT_ENTRY_SIZE,
}

/** Table rows whose first cell is one `UPPER_CASE` name and whose second starts with a number. */
function namedRows(text: string): Array<{name: string; value: number; line: string}> {
  const rows: Array<{name: string; value: number; line: string}> = []
  for (const line of text.split('\n')) {
    const m = /^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|\s*([0-9][0-9_]*)\b/.exec(line)
    if (m) rows.push({name: m[1], value: Number(m[2].replaceAll('_', '')), line})
  }
  return rows
}

/** The text of a `###` or `##` section, up to the next heading of the same or a higher level. */
function section(heading: string): string {
  const lines = doc.split('\n')
  const start = lines.findIndex((l) => l.replace(/^#+\s*/, '') === heading && l.startsWith('#'))
  assert.ok(start >= 0, `doc/protocol.md has a "${heading}" heading`)
  const level = (lines[start].match(/^#+/) as RegExpMatchArray)[0].length
  let end = start + 1
  while (end < lines.length && !(lines[end].startsWith('#') && (lines[end].match(/^#+/) as RegExpMatchArray)[0].length <= level)) end++
  return lines.slice(start + 1, end).join('\n')
}

describe('doc/protocol.md against the code', () => {
  it('every constant a table names has the value the code has', () => {
    // The "Error codes" chapter's second column is an exit code, not a constant's value: its
    // table is checked against the error registry (test/core/errors/registry.test.ts).
    const errorCodes = section('Error codes')
    const rows = namedRows(doc.replace(errorCodes, ''))
    assert.ok(rows.length >= 15, `only ${rows.length} named constants found: the table format changed?`)
    for (const {name, value, line} of rows) {
      assert.ok(name in code, `the doc names ${name}, which no module this test knows exports: ${line}`)
      assert.equal(value, code[name], `doc says ${name} = ${value}, the code has ${code[name]}`)
    }
  })

  it('every flow-control rule of protocol/flow.ts is in the "Flow control" table', () => {
    const named = new Set(namedRows(section('Flow control')).map((r) => r.name))
    for (const [name, value] of Object.entries(flow)) {
      if (typeof value !== 'number') continue
      assert.ok(named.has(name), `${name} (${value}) is a flow-control rule the doc does not state`)
    }
  })

  it('the frame-type tables match FrameType', () => {
    const seen = new Set<string>()
    for (const line of doc.split('\n')) {
      const m = /^\|\s*(\d+)\s*\|\s*`([A-Z_]+)`\s*\|/.exec(line)
      if (!m) continue
      const name = m[2] as keyof typeof FrameType
      assert.ok(name in FrameType, `the doc lists frame type ${name}, unknown to the code`)
      assert.equal(Number(m[1]), FrameType[name], `frame type ${name}`)
      seen.add(name)
    }
    for (const name of Object.keys(FrameType)) assert.ok(seen.has(name), `frame type ${name} is missing from the doc`)
  })

  it('the flow-control rules hold together', () => {
    // Rule 2: the client reads at most one 4 MiB chunk (at most 4 MiB / MIN_BLOCK_SIZE blocks)
    // past a checkpoint before the next, so every status it waits for is inside the lead.
    const chunkBlocks = (4 << 20) / MIN_BLOCK_SIZE
    assert.ok(flow.MAX_CHECKPOINT_BLOCKS + chunkBlocks <= flow.STATUS_LEAD_BLOCKS, 'a checkpoint spacing past the lead deadlocks')
    // Rule 3: the client's queue holds a whole lead, plus the batch it is reading.
    assert.ok(flow.STATUS_QUEUE_BLOCKS >= flow.STATUS_LEAD_BLOCKS + MAX_STATUS_BATCH, 'a queue shorter than the lead can leave an ack unread')
    // Rule 5: the client shows itself well within the receiver's idle timeout.
    assert.ok(flow.CHECKPOINT_INTERVAL_MS * 6 <= DEFAULT_IDLE_TIMEOUT_MS)
    assert.ok(flow.CHECKPOINT_INTERVAL_MS < 60_000, 'the doc tells receivers not to time out in under a minute')
  })
})
