import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { TABLE_PACKING, type TablePacking, type TextCodec } from '../../core/packed-table.js'
import type { MemoryMode } from './heap-tuning.js'

/**
 * A window the size of a chunk (8 KiB), and a smaller hash: the same ratio on chunks of 8 Ki characters as
 * zlib's defaults, for ~70 KB of working memory per call instead of ~270 KB.
 */
const WINDOW = { windowBits: 13, memLevel: 6 } as const

/**
 * Deflate for a packed table's chunks of data. The text is JSON, so always well-formed UTF-16, and UTF-8 gives
 * it back exactly; the compressed bytes are kept as a latin1 string, one byte per character, in the
 * JavaScript heap (which compacts as it collects) rather than in buffers on the C heap (which does not).
 */
export const DEFLATE_TEXT: TextCodec = {
  compress: (text) => deflateRawSync(Buffer.from(text, 'utf8'), WINDOW).toString('latin1'),
  expand: (packed) => inflateRawSync(Buffer.from(packed, 'latin1'), WINDOW).toString('utf8'),
}

/**
 * How the daemon holds its large tables: packed, and with `--memory lean` their data deflated too. Host
 * records and link tables repeat their field names from entry to entry, so their data shrinks ~5× (bench/merge
 * measures it); but a read of one entry expands its chunk of 8 Ki characters (~25 µs: a merge of 4,000 keys
 * read out of order takes ~115 ms instead of ~14 ms). Runs of reads in order (saves, replies, folds) share
 * one expansion.
 */
export function tablePacking(memory: MemoryMode): TablePacking {
  return memory === 'lean' ? LEAN_PACKING : TABLE_PACKING
}

const LEAN_PACKING: TablePacking = { ...TABLE_PACKING, options: { codec: DEFLATE_TEXT } }
