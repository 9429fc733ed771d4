// Block checksums and the whole-disk digest. The algorithm is recorded in the .psf and
// agreed in the hello, so both ends always hash the same way.
//
// Three algorithms, chosen by benchmark (64 KiB blocks, one call per block, this VM):
// - xxh3 (the default): XXH3-128 (native: vdrep's own addon, built from the xxHash sources that
//   ship in xxhash-addon, else xxhash-addon itself) at ~7.5-8.5 GB/s per core against
//   ~2.5-3.3 GB/s for BLAKE3 and ~1.5 GB/s for SHA-256 with SHA-NI. A block checksum needs
//   at least 128 bits (DESIGN); XXH3-128 is what rsync 3.2 uses for the same job. It is not a
//   cryptographic hash, so it is keyed: the seed is the first 8 bytes of the replica id
//   (random at `init`, never on the guest's disk), so a guest cannot craft two blocks that
//   collide under the seed it does not know. The whole-disk proof over the block checksums is
//   SHA-256 (cryptographic, and in Node itself, so both hosts always have it; it hashes 32
//   bytes per block, ~0.3 ms per GiB of disk).
// - blake3: BLAKE3 (native, @napi-rs/blake-hash) for block checksums (256 bits) and the proof;
//   for users who want every checksum cryptographic.
// - sha256: Node's crypto for both; the fallback when neither native package loads.
//
// Every checksum occupies a HASH_LENGTH (32-byte) slot in frames and in the .psf index; the
// 128-bit XXH3 checksum fills the first 16 bytes and the rest are zero.
import crypto from 'node:crypto'
import {createRequire} from 'node:module'
import {UsageError} from '../errors.js'
import {xxh3IntoNative} from '../native/hashing.js'

export const HASH_LENGTH = 32
const XXH3_LENGTH = 16

export const HashAlgo = {SHA256: 1, BLAKE3: 2, XXH3: 3} as const
export type HashAlgoId = (typeof HashAlgo)[keyof typeof HashAlgo]
export const HASH_ALGO_NAMES = ['xxh3', 'blake3', 'sha256'] as const

interface Blake3Module {
  blake3(input: Buffer): Buffer
  Blake3Hasher: new () => {update(input: Buffer): unknown; digest(encoding?: string): Buffer | string}
}

interface XxhashInstance {
  update(data: Buffer): void
  digest(): Buffer
  reset(): void
}
interface XxhashModule {
  XXHash128: (new (seedOrSecret: Buffer) => XxhashInstance) & {hash(data: Buffer): Buffer}
}

const require = createRequire(import.meta.url)

function loadOptional<T>(name: string): T | undefined {
  try {
    return require(name) as T
  } catch {
    return undefined
  }
}

// Loaded on first use: each costs ~10 ms at start-up (their loaders ask process.report which
// libc this is), which commands that never hash (status, init, errors) should not pay.
let blake3Loaded: Blake3Module | undefined | null = null
let xxhashLoaded: XxhashModule | undefined | null = null
function blake3Module(): Blake3Module | undefined {
  if (blake3Loaded === null) blake3Loaded = loadOptional<Blake3Module>('@napi-rs/blake-hash')
  return blake3Loaded
}
function xxhashModule(): XxhashModule | undefined {
  if (xxhashLoaded === null) xxhashLoaded = loadOptional<XxhashModule>('xxhash-addon')
  return xxhashLoaded
}

export function isKnownHashAlgo(id: number): id is HashAlgoId {
  return id === HashAlgo.SHA256 || id === HashAlgo.BLAKE3 || id === HashAlgo.XXH3
}

export function defaultHashAlgo(): HashAlgoId {
  if (xxh3IntoNative() || xxhashModule()) return HashAlgo.XXH3
  return blake3Module() ? HashAlgo.BLAKE3 : HashAlgo.SHA256
}

export function hashAlgoName(id: number): string {
  if (id === HashAlgo.SHA256) return 'sha256'
  if (id === HashAlgo.BLAKE3) return 'blake3'
  if (id === HashAlgo.XXH3) return 'xxh3'
  return `unknown(${id})`
}

export function parseHashAlgo(name: string): HashAlgoId {
  if (name === 'sha256') return HashAlgo.SHA256
  if (name === 'blake3') return HashAlgo.BLAKE3
  if (name === 'xxh3' || name === 'xxh128') return HashAlgo.XXH3
  throw new UsageError('BAD_HASH', `unknown hash algorithm '${name}'`, {hint: `use ${HASH_ALGO_NAMES.join(', ')}`})
}

/** Incremental hasher for the whole-disk digest (fed the block hashes in order). */
export interface StreamHasher {
  update(data: Buffer): void
  digest(): Buffer
}

export interface BlockHasher {
  readonly algo: HashAlgoId
  readonly name: string
  /** The block's checksum in a fresh HASH_LENGTH buffer. */
  hash(data: Buffer): Buffer
  /** The block's checksum written into out[offset, offset + HASH_LENGTH). */
  hashInto(data: Buffer, out: Buffer, offset: number): void
  /** The hasher of the whole-disk proof (always a cryptographic hash). */
  createStream(): StreamHasher
  /** Hash of an all-zero block of the given length (cached: zero blocks are never hashed). */
  zeroHash(length: number): Buffer
  /** xxh3 only: the 8-byte seed, for code that computes the same checksums natively. */
  readonly xxh3Seed?: Buffer
}

/**
 * @param key the replica id (16 bytes); it keys the checksums of algorithms that are not
 *   cryptographic (xxh3: its first 8 bytes are the seed, read big-endian by xxHash's canonical
 *   form) and is ignored by the others.
 */
export function blockHasher(algo: number, key: Buffer): BlockHasher {
  if (algo === HashAlgo.XXH3) return xxh3Hasher(key)
  if (algo === HashAlgo.BLAKE3) {
    const m = blake3Module()
    if (!m) throw unavailable('blake3', '@napi-rs/blake-hash')
    const hash = (data: Buffer) => m.blake3(data)
    return withZeroCache({
      algo: HashAlgo.BLAKE3,
      name: 'blake3',
      hash,
      hashInto: (data, out, offset) => void hash(data).copy(out, offset),
      createStream: () => {
        const h = new m.Blake3Hasher()
        return {update: (d) => void h.update(d), digest: () => Buffer.from(h.digest('hex') as string, 'hex')}
      },
    })
  }
  if (algo === HashAlgo.SHA256) {
    const hash = (data: Buffer) => crypto.hash('sha256', data, 'buffer') as unknown as Buffer
    return withZeroCache({
      algo: HashAlgo.SHA256,
      name: 'sha256',
      hash,
      hashInto: (data, out, offset) => void hash(data).copy(out, offset),
      createStream: sha256Stream,
    })
  }
  throw new UsageError('BAD_HASH', `unknown hash algorithm id ${algo}`)
}

function xxh3Hasher(key: Buffer): BlockHasher {
  if (key.length < 8) throw new UsageError('BAD_HASH', `the xxh3 key must be at least 8 bytes, got ${key.length}`)
  const seed = Buffer.from(key.subarray(0, 8))
  const native = xxh3IntoNative()
  if (native) return new NativeXxh3Hasher(seed, native)
  const xxhash = xxhashModule()
  if (!xxhash) throw unavailable('xxh3', 'xxhash-addon')
  // One keyed instance per hasher: reset, update, digest per block (measured within 5% of the
  // unkeyed one-call hash). Not shared between hashers, so no caller sees another's state.
  const h = new xxhash.XXHash128(seed)
  const hashInto = (data: Buffer, out: Buffer, offset: number) => {
    h.reset()
    h.update(data)
    h.digest().copy(out, offset)
    out.fill(0, offset + XXH3_LENGTH, offset + HASH_LENGTH)
  }
  return withZeroCache({
    algo: HashAlgo.XXH3,
    name: 'xxh3',
    hash: (data) => {
      const out = Buffer.allocUnsafe(HASH_LENGTH)
      hashInto(data, out, 0)
      return out
    },
    hashInto,
    createStream: sha256Stream,
    xxh3Seed: seed,
  })
}

/**
 * The addon's XXH3 (no allocation, and safe in a worker that is terminated), as a class: its
 * methods are the same functions for every hasher. A `vdrep serve` makes a hasher per session,
 * and V8 compiled the closures a hasher used to be into the receive path's code, which was then
 * thrown away with the session ("weak objects") and compiled again in the next one.
 */
class NativeXxh3Hasher implements BlockHasher {
  readonly algo = HashAlgo.XXH3
  readonly name = 'xxh3'
  private readonly zeros = new Map<number, Buffer>()

  constructor(
    readonly xxh3Seed: Buffer,
    private readonly native: NonNullable<ReturnType<typeof xxh3IntoNative>>,
  ) {}

  hash(data: Buffer): Buffer {
    const out = Buffer.allocUnsafe(HASH_LENGTH)
    this.hashInto(data, out, 0)
    return out
  }

  hashInto(data: Buffer, out: Buffer, offset: number): void {
    this.native(data, this.xxh3Seed, out, offset)
    out.fill(0, offset + XXH3_LENGTH, offset + HASH_LENGTH)
  }

  createStream(): StreamHasher {
    return new Sha256Stream()
  }

  zeroHash(length: number): Buffer {
    let z = this.zeros.get(length)
    if (!z) {
      z = this.hash(Buffer.alloc(length))
      this.zeros.set(length, z)
    }
    return z
  }
}

/** The proof's SHA-256, a class for the reason NativeXxh3Hasher is one. */
class Sha256Stream implements StreamHasher {
  private readonly h = crypto.createHash('sha256')
  update(data: Buffer): void {
    this.h.update(data)
  }
  digest(): Buffer {
    return this.h.digest()
  }
}

function sha256Stream(): StreamHasher {
  return new Sha256Stream()
}

function unavailable(name: string, pkg: string): UsageError {
  return new UsageError('HASH_UNAVAILABLE', `${name} is recorded for this disk but the native package ${pkg} did not load`, {
    hint: 'reinstall vdrep (npm ci) on this host',
  })
}

function withZeroCache(h: Omit<BlockHasher, 'zeroHash'>): BlockHasher {
  const cache = new Map<number, Buffer>()
  return {
    ...h,
    zeroHash(length: number): Buffer {
      let z = cache.get(length)
      if (!z) {
        z = h.hash(Buffer.alloc(length))
        cache.set(length, z)
      }
      return z
    },
  }
}
