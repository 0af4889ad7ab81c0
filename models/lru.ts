// A count-limited least-recently-used cache over a Map, for the module-level caches of
// device tensors (latent views, position-encoding tables). Map iteration order is
// insertion order: re-inserting on a hit makes the first key the least recently used.

/**
 * map's value for key, moved to most recently used; on a miss (or a disposed entry)
 * make()'s value, inserted, after which the oldest entry beyond limit is removed and
 * disposed. Callers use a cached value only within the call that asked for it.
 */
export function cachedIn<K, V extends { dispose(): void; readonly disposed: boolean }>(
  map: Map<K, V>,
  key: K,
  make: () => V,
  limit: number,
): V {
  const hit = map.get(key);
  if (hit !== undefined) {
    map.delete(key);
    if (!hit.disposed) {
      map.set(key, hit);
      return hit;
    }
  }
  const made = make();
  map.set(key, made);
  if (map.size > limit) {
    const [oldest, evicted] = map.entries().next().value as [K, V];
    map.delete(oldest);
    evicted.dispose();
  }
  return made;
}
