/**
 * The deployed bundles' stand-in for the SDK's region lookup in the EC2 instance metadata service
 * (`getInstanceMetadataRegion` in @smithy/core's config module; infra/constructs/deployed-bundle.mjs
 * swaps the file). The SDK asks IMDS only when no AWS_REGION is set, and the Lambda runtime always
 * sets it; should it be asked, it fails by name.
 */
export const getInstanceMetadataRegion = async (): Promise<never> => {
  throw new Error(
    'rekey: AWS_REGION not set; the Lambda bundles leave out the region lookup in instance metadata',
  );
};
