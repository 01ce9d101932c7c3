// Imported FIRST by a suite that must run on libsodium's WASM build although sodium-native is installed: initCrypto()
// reads KLUIS_SODIUM when the suite's before hook calls it, after every import has run.
process.env.KLUIS_SODIUM = 'wasm';
