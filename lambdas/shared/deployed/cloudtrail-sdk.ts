/** `@aws-sdk/client-cloudtrail` in a main bundle: the values rekey's sources import (facade.ts). */
import { facadeCommand } from './facade.ts';

export const LookupEventsCommand = facadeCommand('LookupEventsCommand');
