// `kluis sync`, `status`, `versions` and `restore` (DESIGN §10) are registered here on the program built by
// ./main.ts. Placeholder: the sync engine's owner fills it in.
import type { Command } from 'commander';

export function registerSyncCommands(_program: Command): void {}
