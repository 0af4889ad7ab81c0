// perceiver-io: DeepMind's Perceiver and Perceiver IO for Node.js.
export { Tensor } from './tensor.js';
export type { Scalar, TensorOrScalar } from './tensor.js';
export type { DTypeName, TypedData } from './dtype.js';
export { DTYPES } from './dtype.js';
export { tensor, full, zeros, ones, arange, randn, rand, manualSeed } from './creation.js';
export type { CreateOptions, RandomOptions, TensorData } from './creation.js';
export * from './ops/elementwise.js';
export * from './ops/layout.js';
export * from './ops/reduce.js';
export * from './ops/linalg.js';
export * from './ops/nn.js';
export { tidy, keep } from './scope.js';
export { memory } from './memory.js';
export type { DeviceMemory } from './memory.js';
export { backends, resolveDevice } from './device.js';
export type { BackendInfo, DeviceName } from './device.js';
