// "Did you mean": the known name closest to a misspelt one, for messages about unknown keys.

/** Edit distance (insertions, deletions, substitutions, adjacent swaps), case-insensitive. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  const d: number[][] = Array.from({ length: x.length + 1 }, (_, i) =>
    Array.from({ length: y.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) {
      const cost = x[i - 1] === y[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && x[i - 1] === y[j - 2] && x[i - 2] === y[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[x.length][y.length];
}

/** The candidate `name` most likely stands for, if one is close enough to suggest. */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const allowed = name.length <= 4 ? 1 : name.length <= 8 ? 2 : 3;
  let best: { candidate: string; d: number } | undefined;
  for (const candidate of candidates) {
    const d = distance(name, candidate);
    if (d <= allowed && (!best || d < best.d)) best = { candidate, d };
  }
  return best?.candidate;
}

/** ` (did you mean "x"?)` or nothing. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const close = closestName(name, candidates);
  return close ? ` (did you mean "${close}"?)` : "";
}
