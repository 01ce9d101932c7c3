// The desktop package's public entry: the sync engine's front door (./sync/door.ts). The CLI and the desktop app's
// main process are shells over it; nothing else of the engine is meant to be imported from outside desktop/src/sync/.
export {
  SyncFolder, openFolder, absDir, folderStatuses, fileHistoryAt, restoreAt, locateFile, deviceName,
  type SyncFolderEvents, type FolderStatusView, type OpenOptions, type FileHistory, type VersionInfo, type Restored,
  type Progress, type SyncReport, type EngineState,
} from './sync/door.js';
export { exportSpace, type ExportReport, type ExportMetadata } from './sync/door.js';
