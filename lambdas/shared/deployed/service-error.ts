/**
 * The deployed bundles' form of an SDK client's modelled errors (the `models/errors` module of each
 * @aws-sdk/client-*; infra/constructs/deployed-bundle.mjs rewrites the file into one call of
 * `serviceError` a class). Each client ships every error of its service as a class of its own,
 * some 250 bytes minified, and keeps all of them: its schemas register every error at import so
 * that a response's error code becomes the right class. The class made here is the one the SDK's
 * would be, member for member: the same name, `shapeId`, `$fault`, `$retryable` and fields, set
 * in the same order, and its own prototype (so `instanceof` answers as the SDK's does).
 */

/** The client's base exception (`<Service>ServiceException`), which sets name, $fault, $metadata and message. */
type BaseException = new (options: Record<string, unknown>) => object;

const field = (target: object, key: string, value: unknown) =>
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });

/**
 * The error class `name` of the client whose base exception is `Base`: its static `shapeId` is
 * `<namespace>#<name>` (none without a namespace: clients generated before the schemas), `fault`
 * its `$fault`, `fields` the modelled members it copies from its options, in the class's order,
 * and `retryable` makes a fresh `$retryable` for each error, when the SDK's class has one.
 * (Positional: the bundles hold one call a class.)
 */
export function serviceError(
  Base: BaseException,
  namespace: string | undefined,
  name: string,
  fault: 'client' | 'server',
  fields: readonly string[],
  retryable?: () => object,
): BaseException {
  const ServiceError = class extends Base {
    constructor(opts: Record<string, unknown>) {
      super({ name, $fault: fault, ...opts });
      // The SDK's class fields, defined (not assigned) once super() returns, in its order.
      field(this, 'name', name);
      field(this, '$fault', fault);
      if (retryable) field(this, '$retryable', retryable());
      for (const key of fields) field(this, key, undefined);
      Object.setPrototypeOf(this, ServiceError.prototype);
      for (const key of fields) (this as Record<string, unknown>)[key] = opts[key];
    }
  };
  Object.defineProperty(ServiceError, 'name', { value: name, configurable: true });
  if (namespace !== undefined) field(ServiceError, 'shapeId', `${namespace}#${name}`);
  return ServiceError;
}
