// The few host globals shared/ may use: present in Node, Electron and every browser. Declared here because
// shared/ compiles without the DOM and Node type libraries (so any other host API is a compile error).
declare class TextEncoder {
  encode(input?: string): Uint8Array;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean });
  decode(input?: Uint8Array): string;
}
