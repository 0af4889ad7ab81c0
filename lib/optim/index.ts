export { Optimizer, type OptimizerStateDict, type ParamGroup, type ResolvedGroup } from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { AdamW, LAMB, norm, type AdamOptions } from './adam.js';
export { clipGradNorm } from './clip.js';
export { GradScaler, type GradScalerOptions, type GradScalerState } from './grad-scaler.js';
export { constant, constantCosine, warmupCosine, stepDecay, scaleLearningRate, type Schedule, type ConstantCosineOptions, type WarmupCosineOptions, type StepDecayOptions } from './schedules.js';
export { decayGroups, exemptFromDecay, type DecayGroupOptions } from './param-groups.js';
