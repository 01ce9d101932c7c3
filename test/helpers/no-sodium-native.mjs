// Module hooks (node --import a register call): 'sodium-native' cannot be found, as on a machine where the addon is
// missing. test/unit/crypto-native.test.ts checks that crypto then falls back to WASM.
export async function resolve(specifier, context, next) {
  if (specifier === 'sodium-native') throw Object.assign(new Error("Cannot find package 'sodium-native'"), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
}
