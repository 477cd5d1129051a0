// asl-validator 4 ships JavaScript only; this is the part of its API rekey uses.
declare module 'asl-validator' {
  interface ValidationResult {
    isValid: boolean;
    errors: Array<{ 'Error code': string; Message: string }>;
    errorsText(separator?: string): string;
  }
  /** Note: it mutates the definition (adds QueryLanguage to every state); pass a copy. */
  export default function aslValidator(
    definition: unknown,
    options?: { checkPaths?: boolean; checkArn?: boolean },
  ): ValidationResult;
}
