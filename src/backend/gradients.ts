/**
 * Registers tfjs-core's op gradients (tf.grad / tf.variableGrads through GPT-2 need them; tfjs-core
 * registers them only on request). They ship only as ESM files with extensionless relative imports
 * ('./gradients/Abs_grad'), which bundlers and vitest resolve but Node's own ESM loader refuses
 * (ERR_MODULE_NOT_FOUND / ERR_UNSUPPORTED_DIR_IMPORT, so the CLI died at startup). A resolve hook that
 * retries such an import with ".js" lets Node load them; the registry they fill is global, shared with the CommonJS build Node uses.
 */
import { register } from 'node:module';

const HOOK = `
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    const retry = (err?.code === 'ERR_MODULE_NOT_FOUND' || err?.code === 'ERR_UNSUPPORTED_DIR_IMPORT') &&
      specifier.startsWith('.') && !specifier.endsWith('.js') && context.parentURL?.includes('/@tensorflow/tfjs-core/dist/');
    if (!retry) throw err;
    return next(specifier + '.js', context);
  }
}`;

register(`data:text/javascript,${encodeURIComponent(HOOK)}`);
await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');
