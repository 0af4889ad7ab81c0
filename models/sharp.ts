// sharp (libvips) is loaded on first use: running or training a model on tensors never
// needs it, so a host without its prebuilt binary still runs every model, and image
// decoding there fails with a clear error instead of the whole package failing to load.
import type Sharp from 'sharp';

let loading: Promise<typeof Sharp> | null = null;

/** The sharp function, imported once. */
export function loadSharp(): Promise<typeof Sharp> {
  loading ??= import('sharp').then(
    (m) => m.default,
    (err: unknown) => {
      loading = null;
      throw new Error(`image decoding needs the 'sharp' package, which could not be loaded: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
    },
  );
  return loading;
}
