/**
 * Waits for something a test expects to happen soon (a timer-driven export, a child's output)
 * without betting on how soon: on a loaded 2-core machine a 30 ms timer can run hundreds of ms
 * late. Polls `ready` every 5 ms; resolves once it holds, rejects after `withinMs` with `what`.
 * A bound that matters to the product is asserted separately, with its own margin.
 */
export async function eventually(what: string, ready: () => boolean, withinMs = 10_000): Promise<void> {
  const until = performance.now() + withinMs;
  while (!ready()) {
    if (performance.now() > until) throw new Error(`not within ${withinMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
