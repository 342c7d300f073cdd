/**
 * The panel's memory-over-time plot, drawn in plain SVG from the geometry that
 * src/timeline.ts computes: non-reclaimable and paged-out memory, the limit and the
 * guard's and the budget's thresholds, and markers for cleanups, budget cleanups and
 * guard stops, each with its tooltip; a legend below. Colours and dashes are in
 * style/base.css (JupyterLab theme variables), keyed by class and `data-kind`.
 */

import { ITrans, NO_TRANSLATION } from './logic';
import { IPlot, LegendKey, MarkerKind } from './timeline';

const SVG_NS = 'http://www.w3.org/2000/svg';

type Attributes = { [name: string]: string | number };

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  className = ''
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    node.setAttribute(name, String(value));
  }
  if (className) {
    node.setAttribute('class', className);
  }
  return node;
}

/** A tooltip: SVG's <title> child. */
function titled<T extends SVGElement>(node: T, text: string): T {
  const title = svg('title');
  title.textContent = text;
  node.append(title);
  return node;
}

/** A marker's glyph centred on (x, y): a circle, a diamond or a downward triangle. */
function glyph(kind: MarkerKind, x: number, y: number): SVGElement {
  const r = 4;
  if (kind === 'cleanup') {
    return svg('circle', { cx: x, cy: y, r: r - 0.5 });
  }
  const d =
    kind === 'budget'
      ? `M${x},${y - r}L${x + r},${y}L${x},${y + r}L${x - r},${y}Z`
      : `M${x - r},${y - r}L${x + r},${y - r}L${x},${y + r}Z`;
  return svg('path', { d });
}

/** The plot's SVG element. */
export function plotSvg(
  plot: IPlot,
  trans: ITrans = NO_TRANSLATION
): SVGSVGElement {
  const { area } = plot;
  const root = svg(
    'svg',
    {
      width: plot.width,
      height: plot.height,
      viewBox: `0 0 ${plot.width} ${plot.height}`,
      role: 'img',
      'aria-label': trans.__('Memory over time')
    },
    'jp-greed-memory-plot'
  );
  root.dataset.points = String(plot.points);

  const grid = svg('g', {}, 'jp-greed-plot-grid');
  for (const tick of plot.yTicks) {
    grid.append(
      svg('line', { x1: area.left, x2: area.right, y1: tick.y, y2: tick.y })
    );
    const label = svg(
      'text',
      { x: area.left - 4, y: tick.y, 'text-anchor': 'end', dy: '0.32em' },
      'jp-greed-plot-label'
    );
    label.textContent = tick.label;
    grid.append(label);
  }
  for (const tick of plot.xTicks) {
    grid.append(
      svg('line', {
        x1: tick.x,
        x2: tick.x,
        y1: area.bottom,
        y2: area.bottom + 3
      })
    );
    const label = svg(
      'text',
      { x: tick.x, y: area.bottom + 14, 'text-anchor': 'middle' },
      'jp-greed-plot-label'
    );
    label.textContent = tick.label;
    grid.append(label);
  }
  root.append(grid);
  root.append(
    svg(
      'path',
      {
        d: `M${area.left},${area.top}V${area.bottom}H${area.right}`,
        fill: 'none'
      },
      'jp-greed-plot-axis'
    )
  );

  root.append(svg('path', { d: plot.unreclaimableArea }, 'jp-greed-plot-area'));
  for (const line of plot.lines) {
    const node = titled(
      svg(
        'line',
        { x1: area.left, x2: area.right, y1: line.y, y2: line.y },
        'jp-greed-plot-threshold'
      ),
      line.title
    );
    node.dataset.kind = line.key;
    root.append(node);
  }
  if (plot.paged !== null) {
    root.append(
      svg('path', { d: plot.paged, fill: 'none' }, 'jp-greed-plot-paged')
    );
  }
  root.append(
    svg(
      'path',
      { d: plot.unreclaimable, fill: 'none' },
      'jp-greed-plot-unreclaimable'
    )
  );
  root.append(
    titled(
      svg(
        'circle',
        { cx: plot.last.x, cy: plot.last.y, r: 2.5 },
        'jp-greed-plot-last'
      ),
      plot.last.title
    )
  );

  for (const marker of plot.markers) {
    const g = titled(svg('g', {}, 'jp-greed-plot-marker'), marker.title);
    g.dataset.kind = marker.kind;
    g.append(
      svg('line', {
        x1: marker.x,
        x2: marker.x,
        y1: area.top,
        y2: area.bottom
      }),
      glyph(marker.kind, marker.x, area.top - 6)
    );
    root.append(g);
  }
  return root;
}

/** A legend entry's sample: a short line, or a marker's glyph. */
function swatch(key: LegendKey): SVGSVGElement {
  const root = svg('svg', { width: 18, height: 10, viewBox: '0 0 18 10' });
  if (key.startsWith('marker-')) {
    const kind = key.slice('marker-'.length) as MarkerKind;
    const g = svg('g', {}, 'jp-greed-plot-marker');
    g.dataset.kind = kind;
    g.append(glyph(kind, 9, 5));
    root.append(g);
    return root;
  }
  const classes: { [k: string]: [string, string] } = {
    unreclaimable: ['jp-greed-plot-unreclaimable', ''],
    paged: ['jp-greed-plot-paged', ''],
    limit: ['jp-greed-plot-threshold', 'limit'],
    'guard-line': ['jp-greed-plot-threshold', 'guard'],
    'budget-line': ['jp-greed-plot-threshold', 'budget']
  };
  const [className, kind] = classes[key];
  const line = svg('line', { x1: 1, x2: 17, y1: 5, y2: 5 }, className);
  if (kind) {
    line.dataset.kind = kind;
  }
  root.append(line);
  return root;
}

/** The plot with its legend and caption: the panel's "Memory over time" section. */
export function renderMemoryPlot(
  plot: IPlot,
  trans: ITrans = NO_TRANSLATION
): HTMLElement {
  const wrap = document.createElement('div');
  wrap.className = 'jp-greed-memory';
  wrap.append(plotSvg(plot, trans));
  const legend = document.createElement('div');
  legend.className = 'jp-greed-plot-legend';
  for (const entry of plot.legend) {
    const item = document.createElement('span');
    item.className = 'jp-greed-legend-item';
    item.dataset.key = entry.key;
    item.append(swatch(entry.key), document.createTextNode(entry.label));
    legend.append(item);
  }
  wrap.append(legend);
  if (plot.caption) {
    const caption = document.createElement('div');
    caption.className = 'jp-greed-plot-caption';
    caption.textContent = plot.caption;
    wrap.append(caption);
  }
  return wrap;
}
