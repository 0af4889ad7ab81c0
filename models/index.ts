// The Perceiver family on top of lib/: HF module names, so HF state dicts load 1:1.
export { perceiverConfig } from './config.js';
export type { PerceiverConfig, HiddenAct } from './config.js';
export { PerceiverSelfAttention, PerceiverSelfOutput, PerceiverAttention, setFastCrossAttention, setFusedProjections } from './attention.js';
export { attentionWithDropout } from './attention-dropout.js';
export type { PerceiverSelfAttentionOptions, PerceiverAttentionOptions } from './attention.js';
export { PerceiverMLP, activationOf } from './mlp.js';
export { PerceiverLayer } from './layer.js';
export type { PerceiverLayerOptions } from './layer.js';
export { PerceiverEmbeddings, LATENT_VIEWS_KEPT } from './embeddings.js';
export { PerceiverEncoder } from './encoder.js';
export {
  PerceiverTrainablePositionEncoding,
  PerceiverFourierPositionEncoding,
  fourierFeatures,
  linearPositions,
  linspaceF32,
} from './position-encoding.js';
export type { FourierOptions, PositionEncoding, PositionEncodingOptions } from './position-encoding.js';
export type { Preprocessor, PreprocessorOptions, PreprocessorOutput } from './preprocessors/preprocessor.js';
export { PerceiverTextPreprocessor } from './preprocessors/text.js';
export { PerceiverImagePreprocessor } from './preprocessors/image.js';
export { PerceiverBasicDecoder } from './decoders/basic.js';
export { PerceiverClassificationDecoder } from './decoders/classification.js';
export { PerceiverEmbeddingDecoder } from './decoders/embedding.js';
export { PerceiverModel, keyMask, hfKeyMask } from './perceiver.js';
export type { Decoder, PerceiverModelOutput } from './perceiver.js';
export { PerceiverForMaskedLM } from './masked-lm.js';
export { PerceiverForSequenceClassification } from './sequence-classification.js';
export { PerceiverImageClassifier } from './image-classifier.js';
export { PerceiverForImageClassificationFourier } from './image-classification-fourier.js';
export { PerceiverOpticalFlowDecoder } from './decoders/optical-flow.js';
export { Conv2DDownsample } from './preprocessors/conv-downsample.js';
export { spaceToDepth } from './preprocessors/space-to-depth.js';
export { PerceiverForImageClassificationLearned } from './image-classification-learned.js';
export { PerceiverForImageClassificationConvProcessing } from './image-classification-conv.js';
export { PerceiverForOpticalFlow } from './optical-flow.js';
export { PerceiverBasicVideoAutoencodingDecoder } from './decoders/video-autoencoding.js';
export { PerceiverMultimodalDecoder } from './decoders/multimodal.js';
export type { ModalityDecoder } from './decoders/multimodal.js';
export { subsampledPositions } from './decoders/basic.js';
export type { DecoderQueryContext, PerceiverBasicDecoderOptions } from './decoders/basic.js';
export { PerceiverAudioPreprocessor } from './preprocessors/audio.js';
export { PerceiverOneHotPreprocessor } from './preprocessors/one-hot.js';
export { PerceiverMultimodalPreprocessor } from './preprocessors/multimodal.js';
export type { PreprocessorInput } from './preprocessors/preprocessor.js';
export {
  PerceiverClassificationPostprocessor,
  PerceiverAudioPostprocessor,
  PerceiverProjectionPostprocessor,
  PerceiverIdentityPostprocessor,
  PerceiverMultimodalPostprocessor,
} from './postprocessors.js';
export type { Postprocessor } from './postprocessors.js';
export { PerceiverForMultimodalAutoencoding } from './multimodal-autoencoding.js';
export type { MultimodalInputs } from './multimodal-autoencoding.js';
export type { PerceiverForwardOptions } from './perceiver.js';
export { createModel, ARCHITECTURES } from './registry.js';
export type { ArchitectureName } from './registry.js';
export { queryRowMask } from './decoders/basic.js';
export { loadModel, readModelConfig, readModelRecords, unknownConfigKeys } from './load.js';
export type { LoadModelOptions, LoadedModel, WeightsLayout } from './load.js';
export { saveModel, configJson } from './save.js';
export type { SaveModelOptions } from './save.js';
export { forwardNamed, namedInputSpec, checkNamedInputs, isIgnoredInput } from './named-io.js';
export type { NamedInputSpec, ForwardNamedOptions } from './named-io.js';
export { ConvTranspose2d, ConvTranspose3d, Conv2DUpsample, Conv3DUpsample, PerceiverImagePostprocessor, depthToSpace } from './image-postprocessor.js';
export type { ConvTranspose2dOptions, ConvTranspose3dOptions, PerceiverImagePostprocessorOptions } from './image-postprocessor.js';
export { BytesTokenizer, SPECIAL_TOKENS } from './tokenizer.js';
export type { EncodeOptions, Encoding, DecodeOptions, SpecialTokenName } from './tokenizer.js';
export { PerceiverProjectionDecoder } from './decoders/projection.js';
export type { PerceiverProjectionDecoderOptions } from './decoders/projection.js';
export { computeGridIndices, gridRepeats, windowWeights, stitchWindows, windowPatches } from './flow-tiling.js';
export type { Size2 } from './flow-tiling.js';
export { makeColorWheel, flowToColor, encodePng, encodeFlo, crc32 } from './flow-vis.js';
export { autoencodeInChunks, chunkRanges } from './multimodal-chunked.js';
export type { ChunkedReconstruction, ChunkedOptions } from './multimodal-chunked.js';
export { LANGUAGE_PERCEIVER, VISION_PERCEIVER_FOURIER } from './presets.js';
export { haikuToStateDict, detectHaikuArchitecture, haikuPreset, HAIKU_ARCHITECTURES } from './haiku.js';
export type { HaikuConversion, HaikuConversionOptions } from './haiku.js';
export { countFlops } from './flops.js';
export type { FlopCount, FlopPart, FlopOptions } from './flops.js';
export { decodeImage, encodePngRgb, writeFileAtomic } from './image-io.js';
export { modelInfo } from './model-info.js';
export type { ModelInfo } from './model-info.js';
export { parseMaskedText, fillMask } from './fill-mask.js';
export { labelOf, topKClasses } from './classification.js';
export { estimateFlow, FLOW_SCALE_FACTOR } from './flow-estimate.js';
export type { FlowOptions } from './flow-estimate.js';
export type { DecodedImage } from './image-io.js';
export { imageProcessorOptions, preprocessImage, centerCrop, resizeBicubic, cropAndResize, toPixelValues, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD } from './image-processor.js';
export type { RgbImage, ImageProcessorOptions } from './image-processor.js';
export { train, evaluate, DEFAULT_TRAIN } from './train/trainer.js';
export type { TrainConfig, TrainRunOptions, TrainState, Progress as TrainProgress, EvalResult, TrainableClassifier } from './train/trainer.js';
export { loadMnist } from './train/mnist.js';
export type { ImageSet } from './train/mnist.js';
export { memorySource, imageFolderSources, ImageFolderSource, randomResizedCrop, listImageFolder } from './train/image-pipeline.js';
export type { DataSource, Batch, Augment, ImageFolderSourceOptions } from './train/image-pipeline.js';
export { PRESETS as TRAIN_PRESETS } from './train/presets.js';
export type { TrainPreset } from './train/presets.js';
