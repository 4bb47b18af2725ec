// Validation without a migration, for a preview: the same premigration checks the worker runs,
// bounded in time so a slow or silent server never holds the preview for long.
import { validateInProcess } from "../runtime/supervise";
import type { MigrationSpec, ValidationReport } from "../spec/types";

/** Longest a preview waits for the checks by default. */
export const PREVIEW_VALIDATION_TIMEOUT_MS = 15_000;

export type PreviewValidation =
  | { readonly done: true; readonly report: ValidationReport }
  | { readonly done: false; readonly timeoutMs: number };

/** Runs every premigration check of `spec`, or gives up after `timeoutMs`. */
export async function previewValidation(
  spec: MigrationSpec,
  timeoutMs: number = PREVIEW_VALIDATION_TIMEOUT_MS,
): Promise<PreviewValidation> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<PreviewValidation>((resolve) => {
    timer = setTimeout(() => resolve({ done: false, timeoutMs }), timeoutMs);
  });
  try {
    return await Promise.race([
      validateInProcess(spec).then((report): PreviewValidation => ({ done: true, report })),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
