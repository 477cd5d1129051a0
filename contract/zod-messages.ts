/**
 * The contract's schemas use `zod/mini` (a few KB in each Lambda bundle, against some 90 KB for
 * classic zod's namespace: docs/performance.md). Unlike classic zod, mini loads no locale: without
 * this, every message the schemas do not spell out would read "Invalid input". Imported by every
 * contract module that builds a schema, so the messages are the same in every process.
 */
import { en } from 'zod/locales';
import * as z from 'zod/mini';

z.config(en());
