/** `@aws-sdk/client-s3` in a main bundle: the values rekey's sources import (facade.ts). */
import { facadeCommand } from './facade.ts';

export const PutObjectCommand = facadeCommand('PutObjectCommand');
