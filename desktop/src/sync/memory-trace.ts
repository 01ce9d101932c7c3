// Memory at the phases of a pass, for finding where a sync's memory goes (issue 22): with KLUIS_TRACE_MEMORY=1 the
// engine writes one line per phase boundary to stderr (`mem <phase> rss=… heap=… external=… buffers=…`, MB), and
// every second while a pass runs. Off by default: a no-op costing one property read per call.
const on = process.env.KLUIS_TRACE_MEMORY === '1';
const MB = 1e6;

/** Writes the process's memory at `phase` to stderr when tracing (KLUIS_TRACE_MEMORY=1). */
export function traceMemory(phase: string): void {
  if (!on) return;
  const m = process.memoryUsage();
  const f = (n: number): string => (n / MB).toFixed(0);
  process.stderr.write(`mem ${phase} rss=${f(m.rss)} heap=${f(m.heapUsed)}/${f(m.heapTotal)} external=${f(m.external)} buffers=${f(m.arrayBuffers)}\n`);
}

if (on) setInterval(() => traceMemory('tick'), 1000).unref();
