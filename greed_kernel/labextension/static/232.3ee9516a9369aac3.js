"use strict";(self.rspackChunkgreed_kernel_lab=self.rspackChunkgreed_kernel_lab||[]).push([[232],{475(e,r,o){var t=o(601),a=o.n(t),p=o(314),n=(o.n(p))()(a());n.push([e.id,`/* greed-kernel-lab: the status-bar item and the side panel. */

.jp-greed-status {
  display: flex;
  align-items: center;
  gap: 4px;
  padding: 0 6px;
  cursor: pointer;
  white-space: nowrap;
  line-height: var(--jp-statusbar-height, 24px);
  color: var(--jp-ui-font-color1);
}

.jp-greed-status:hover {
  background-color: var(--jp-layout-color2);
}

.jp-greed-status-dot {
  display: inline-block;
  width: 8px;
  height: 8px;
  border-radius: 50%;
  background-color: var(--jp-layout-color3);
}

.jp-greed-status.jp-greed-level-normal .jp-greed-status-dot {
  background-color: var(--jp-success-color1);
}

.jp-greed-status.jp-greed-level-warning .jp-greed-status-dot {
  background-color: var(--jp-warn-color1);
}

.jp-greed-status.jp-greed-level-warning {
  color: var(--jp-warn-color0);
}

.jp-greed-status.jp-greed-level-danger .jp-greed-status-dot {
  background-color: var(--jp-error-color1);
}

.jp-greed-status.jp-greed-level-danger {
  color: var(--jp-ui-inverse-font-color1);
  background-color: var(--jp-error-color1);
}

.jp-greed-panel {
  padding: 8px 12px;
  overflow: auto;
  font-size: var(--jp-ui-font-size1);
  color: var(--jp-ui-font-color1);
  background: var(--jp-layout-color1);
}

.jp-greed-panel h2 {
  font-size: var(--jp-ui-font-size2);
  margin: 4px 0 8px;
}

.jp-greed-panel h3 {
  font-size: var(--jp-ui-font-size1);
  font-weight: 600;
  margin: 14px 0 6px;
}

.jp-greed-panel-session {
  font-weight: 600;
  margin-bottom: 2px;
}

.jp-greed-panel-status {
  padding: 2px 4px;
  border-left: 4px solid var(--jp-success-color1);
}

.jp-greed-panel-status.jp-greed-level-warning {
  border-left-color: var(--jp-warn-color1);
}

.jp-greed-panel-status.jp-greed-level-danger {
  border-left-color: var(--jp-error-color1);
  color: var(--jp-error-color1);
}

.jp-greed-panel-actions {
  display: flex;
  flex-wrap: wrap;
  gap: 6px;
  margin: 10px 0 4px;
}

.jp-greed-panel-error {
  color: var(--jp-error-color1);
}

.jp-greed-panel-empty,
.jp-greed-panel-note {
  color: var(--jp-ui-font-color2);
}

.jp-greed-button.jp-mod-styled {
  display: inline-flex;
  align-items: center;
  height: 24px;
  line-height: 22px;
  padding: 0 10px;
  border: var(--jp-border-width) solid var(--jp-border-color1);
  background: var(--jp-layout-color2);
  color: var(--jp-ui-font-color1);
}

.jp-greed-button.jp-mod-styled:hover:not(:disabled) {
  background: var(--jp-layout-color3);
}

.jp-greed-button.jp-mod-styled:disabled {
  opacity: 0.5;
  cursor: default;
}

.jp-greed-button.jp-greed-small {
  height: 20px;
  padding: 0 6px;
  font-size: var(--jp-ui-font-size0);
}

.jp-greed-table-wrap {
  overflow-x: auto;
}

.jp-greed-table {
  border-collapse: collapse;
  width: 100%;
}

.jp-greed-table th,
.jp-greed-table td {
  padding: 3px 6px;
  text-align: left;
  border-bottom: var(--jp-border-width) solid var(--jp-border-color2);
  white-space: nowrap;
}

.jp-greed-table th {
  font-weight: 600;
  background: var(--jp-layout-color2);
  position: sticky;
  top: 0;
}

.jp-greed-vars th[data-key] {
  cursor: pointer;
  user-select: none;
}

.jp-greed-vars th.jp-greed-sort-asc::after {
  content: ' ▲';
  font-size: 0.8em;
}

.jp-greed-vars th.jp-greed-sort-desc::after {
  content: ' ▼';
  font-size: 0.8em;
}

.jp-greed-table .jp-greed-num {
  text-align: right;
  font-variant-numeric: tabular-nums;
}

.jp-greed-name {
  font-family: var(--jp-code-font-family);
}

.jp-greed-rule {
  color: var(--jp-ui-font-color2);
}

.jp-greed-decision-stale {
  color: var(--jp-warn-color0);
}

.jp-greed-decision-clean {
  color: var(--jp-ui-font-color2);
}

.jp-greed-status.jp-greed-unheld {
  font-weight: 600;
}

.jp-greed-panel-budget {
  margin-top: 4px;
  padding: 2px 4px;
  color: var(--jp-ui-font-color2);
}

.jp-greed-panel-budget.jp-greed-unheld,
.jp-greed-panel-holders {
  color: var(--jp-warn-color0);
}

.jp-greed-panel-holders {
  padding: 2px 4px;
  white-space: normal;
}

.jp-greed-panel-notice {
  padding: 2px 4px;
  color: var(--jp-warn-color0);
  font-style: italic;
}

.jp-greed-panel-message {
  color: var(--jp-success-color0);
}

.jp-greed-paged .jp-greed-paged-bytes {
  color: var(--jp-brand-color1);
}

.jp-greed-row-actions .jp-greed-button + .jp-greed-button {
  margin-left: 4px;
}

/* The previous kernel of this notebook died: said once, calmly, at the top. */
.jp-greed-panel-previous {
  margin: 0 0 8px;
  padding: 6px 8px;
  border-left: 4px solid var(--jp-info-color1);
  background: var(--jp-layout-color2);
  white-space: normal;
}

/* Memory over time (src/plot.ts). */
.jp-greed-memory-plot {
  display: block;
  overflow: visible;
}

.jp-greed-plot-grid line {
  stroke: var(--jp-border-color2);
  stroke-width: 1;
}

.jp-greed-plot-label {
  fill: var(--jp-ui-font-color2);
  font-size: 10px;
  font-variant-numeric: tabular-nums;
}

.jp-greed-plot-axis {
  stroke: var(--jp-border-color1);
  stroke-width: 1;
}

.jp-greed-plot-area {
  fill: var(--jp-brand-color1);
  fill-opacity: 0.12;
  stroke: none;
}

.jp-greed-plot-unreclaimable {
  stroke: var(--jp-brand-color1);
  stroke-width: 1.5;
  stroke-linejoin: round;
}

.jp-greed-plot-paged {
  stroke: var(--jp-icon-contrast-color0, #8e24aa);
  stroke-width: 1.5;
  stroke-dasharray: 4 2;
  stroke-linejoin: round;
}

.jp-greed-plot-last {
  fill: var(--jp-brand-color1);
}

.jp-greed-plot-threshold {
  stroke-width: 1.5;
}

.jp-greed-plot-threshold[data-kind='limit'] {
  stroke: var(--jp-error-color1);
}

.jp-greed-plot-threshold[data-kind='guard'] {
  stroke: var(--jp-warn-color0);
  stroke-dasharray: 6 3;
}

.jp-greed-plot-threshold[data-kind='budget'] {
  stroke: var(--jp-ui-font-color2);
  stroke-dasharray: 2 3;
}

.jp-greed-plot-marker line {
  stroke-width: 1;
  stroke-dasharray: 1 2;
}

.jp-greed-plot-marker[data-kind='cleanup'] {
  fill: var(--jp-success-color1);
  stroke: var(--jp-success-color1);
}

.jp-greed-plot-marker[data-kind='budget'] {
  fill: var(--jp-warn-color1);
  stroke: var(--jp-warn-color1);
}

.jp-greed-plot-marker[data-kind='guard'] {
  fill: var(--jp-error-color1);
  stroke: var(--jp-error-color1);
}

.jp-greed-plot-legend {
  display: flex;
  flex-wrap: wrap;
  gap: 2px 12px;
  margin-top: 4px;
  color: var(--jp-ui-font-color2);
}

.jp-greed-legend-item {
  display: inline-flex;
  align-items: center;
  gap: 4px;
  white-space: nowrap;
}

.jp-greed-plot-caption {
  margin-top: 4px;
  color: var(--jp-warn-color0);
}
`,""]),o.d(r,{},{A:n})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var o="",t=void 0!==r[5];return r[4]&&(o+="@supports (".concat(r[4],") {")),r[2]&&(o+="@media ".concat(r[2]," {")),t&&(o+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),o+=e(r),t&&(o+="}"),r[2]&&(o+="}"),r[4]&&(o+="}"),o}).join("")},r.i=function(e,o,t,a,p){"string"==typeof e&&(e=[[null,e,void 0]]);var n={};if(t)for(var l=0;l<this.length;l++){var d=this[l][0];null!=d&&(n[d]=!0)}for(var i=0;i<e.length;i++){var s=[].concat(e[i]);t&&n[s[0]]||(void 0!==p&&(void 0===s[5]||(s[1]="@layer".concat(s[5].length>0?" ".concat(s[5]):""," {").concat(s[1],"}")),s[5]=p),o&&(s[2]&&(s[1]="@media ".concat(s[2]," {").concat(s[1],"}")),s[2]=o),a&&(s[4]?(s[1]="@supports (".concat(s[4],") {").concat(s[1],"}"),s[4]=a):s[4]="".concat(a)),r.push(s))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function o(e){for(var o=-1,t=0;t<r.length;t++)if(r[t].identifier===e){o=t;break}return o}function t(e,t){for(var a={},p=[],n=0;n<e.length;n++){var l=e[n],d=t.base?l[0]+t.base:l[0],i=a[d]||0,s="".concat(d," ").concat(i);a[d]=i+1;var c=o(s),g={css:l[1],media:l[2],sourceMap:l[3],supports:l[4],layer:l[5]};if(-1!==c)r[c].references++,r[c].updater(g);else{var u=function(e,r){var o=r.domAPI(r);return o.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&o.update(e=r):o.remove()}}(g,t);t.byIndex=n,r.splice(n,0,{identifier:s,updater:u,references:1})}p.push(s)}return p}e.exports=function(e,a){var p=t(e=e||[],a=a||{});return function(e){e=e||[];for(var n=0;n<p.length;n++){var l=o(p[n]);r[l].references--}for(var d=t(e,a),i=0;i<p.length;i++){var s=o(p[i]);0===r[s].references&&(r[s].updater(),r.splice(s,1))}p=d}}},659(e){var r={};e.exports=function(e,o){var t=function(e){if(void 0===r[e]){var o=document.querySelector(e);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(e){o=null}r[e]=o}return r[e]}(e);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(o)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,o){e.exports=function(e){var r=o.nc;r&&e.setAttribute("nonce",r)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(o){var t,a,p;t="",o.supports&&(t+="@supports (".concat(o.supports,") {")),o.media&&(t+="@media ".concat(o.media," {")),(a=void 0!==o.layer)&&(t+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),t+=o.css,a&&(t+="}"),o.media&&(t+="}"),o.supports&&(t+="}"),(p=o.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(p))))," */")),e.styleTagTransform(t,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},579(e,r,o){var t=o(72),a=o.n(t),p=o(825),n=o.n(p),l=o(659),d=o.n(l),i=o(56),s=o.n(i),c=o(540),g=o.n(c),u=o(113),j=o.n(u),v=o(475),f={};f.styleTagTransform=j(),f.setAttributes=s(),f.insert=d().bind(null,"head"),f.domAPI=n(),f.insertStyleElement=g(),a()(v.A,f),v.A&&v.A.locals&&v.A.locals}}]);