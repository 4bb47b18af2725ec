// LSN arithmetic. An LSN is a 64-bit WAL position written "X/Y" (two hex halves); we compare
// and subtract them as bigint so positions past 4 GiB stay exact.

/** "16/B374D848" → 0x16B374D848n. */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!m) throw new Error(`not an LSN: "${lsn}"`);
  return (BigInt("0x" + m[1]) << 32n) | BigInt("0x" + m[2]);
}

/** 0x16B374D848n → "16/B374D848" (PostgreSQL's own spelling). */
export function formatLsn(lsn: bigint): string {
  const hi = (lsn >> 32n).toString(16).toUpperCase();
  const lo = (lsn & 0xffffffffn).toString(16).toUpperCase();
  return `${hi}/${lo}`;
}

export function compareLsn(a: string, b: string): number {
  const d = parseLsn(a) - parseLsn(b);
  return d === 0n ? 0 : d > 0n ? 1 : -1;
}

/** Bytes from `from` to `to` (0 when `to` is not ahead). */
export function lsnDistance(from: string, to: string): number {
  const d = parseLsn(to) - parseLsn(from);
  return d > 0n ? Number(d) : 0;
}

export const ZERO_LSN = "0/0";
