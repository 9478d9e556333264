import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { SextantModuleOptions } from './types.ts';

export const {
  ConfigurableModuleClass: SextantConfigurableModule,
  MODULE_OPTIONS_TOKEN: SEXTANT_MODULE_OPTIONS,
  OPTIONS_TYPE: SEXTANT_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: SEXTANT_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<SextantModuleOptions>({ moduleName: 'Sextant' })
  .setClassMethodName('forRoot')
  // Global by default: one instance serves every module; `isGlobal: false` to import it explicitly.
  .setExtras({ isGlobal: true }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
