import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/**
 * A vega-lite spec compiled by vega-lite and rendered to an SVG string by vega's headless View
 * (renderer 'none', no DOM, no canvas). The namespace attributes are dropped: inline SVG in HTML needs none,
 * and the report then holds no URL at all.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none', logLevel: vega.Warn });
  try {
    const svg = await view.toSVG();
    return svg.replace(/\s+xmlns(:xlink)?="[^"]*"/g, '');
  } finally {
    view.finalize();
  }
}
