// Imported first by the CLI (./main.ts), before any other module of the bundle runs: the young generation is held at
// its first size from here (../sync/heap-growth.ts), before start-up's allocations (zod's schemas among them) grow it.
import { holdYoungGeneration } from '../sync/heap-growth.js';

holdYoungGeneration();
