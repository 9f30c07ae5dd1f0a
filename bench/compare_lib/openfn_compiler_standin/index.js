// A pass-through stand-in for @openfn/compiler, which the npm registry here does not serve.
// bench/compare gives every OpenFn job already in the form the compiler emits (an ES module
// exporting its operations), so compiling is handing the source on unchanged. These are the
// two exports @openfn/engine-multi imports.

// The compiled job: the source itself, without a source map.
export default (source) => ({ code: source });

// The names an adaptor exports, which the compiler would import into the job: the jobs
// here import what they use themselves.
export const preloadAdaptorExports = async () => [];
