"use strict";(self.rspackChunkgreed_kernel_lab=self.rspackChunkgreed_kernel_lab||[]).push([[232],{475(e,r,o){var t=o(601),a=o.n(t),n=o(314),p=(o.n(n))()(a());p.push([e.id,`/* greed-kernel-lab: the status-bar item and the side panel. */

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
`,""]),o.d(r,{},{A:p})},314(e){e.exports=function(e){var r=[];return r.toString=function(){return this.map(function(r){var o="",t=void 0!==r[5];return r[4]&&(o+="@supports (".concat(r[4],") {")),r[2]&&(o+="@media ".concat(r[2]," {")),t&&(o+="@layer".concat(r[5].length>0?" ".concat(r[5]):""," {")),o+=e(r),t&&(o+="}"),r[2]&&(o+="}"),r[4]&&(o+="}"),o}).join("")},r.i=function(e,o,t,a,n){"string"==typeof e&&(e=[[null,e,void 0]]);var p={};if(t)for(var l=0;l<this.length;l++){var d=this[l][0];null!=d&&(p[d]=!0)}for(var s=0;s<e.length;s++){var c=[].concat(e[s]);t&&p[c[0]]||(void 0!==n&&(void 0===c[5]||(c[1]="@layer".concat(c[5].length>0?" ".concat(c[5]):""," {").concat(c[1],"}")),c[5]=n),o&&(c[2]&&(c[1]="@media ".concat(c[2]," {").concat(c[1],"}")),c[2]=o),a&&(c[4]?(c[1]="@supports (".concat(c[4],") {").concat(c[1],"}"),c[4]=a):c[4]="".concat(a)),r.push(c))}},r}},601(e){e.exports=function(e){return e[1]}},72(e){var r=[];function o(e){for(var o=-1,t=0;t<r.length;t++)if(r[t].identifier===e){o=t;break}return o}function t(e,t){for(var a={},n=[],p=0;p<e.length;p++){var l=e[p],d=t.base?l[0]+t.base:l[0],s=a[d]||0,c="".concat(d," ").concat(s);a[d]=s+1;var i=o(c),u={css:l[1],media:l[2],sourceMap:l[3],supports:l[4],layer:l[5]};if(-1!==i)r[i].references++,r[i].updater(u);else{var g=function(e,r){var o=r.domAPI(r);return o.update(e),function(r){r?(r.css!==e.css||r.media!==e.media||r.sourceMap!==e.sourceMap||r.supports!==e.supports||r.layer!==e.layer)&&o.update(e=r):o.remove()}}(u,t);t.byIndex=p,r.splice(p,0,{identifier:c,updater:g,references:1})}n.push(c)}return n}e.exports=function(e,a){var n=t(e=e||[],a=a||{});return function(e){e=e||[];for(var p=0;p<n.length;p++){var l=o(n[p]);r[l].references--}for(var d=t(e,a),s=0;s<n.length;s++){var c=o(n[s]);0===r[c].references&&(r[c].updater(),r.splice(c,1))}n=d}}},659(e){var r={};e.exports=function(e,o){var t=function(e){if(void 0===r[e]){var o=document.querySelector(e);if(window.HTMLIFrameElement&&o instanceof window.HTMLIFrameElement)try{o=o.contentDocument.head}catch(e){o=null}r[e]=o}return r[e]}(e);if(!t)throw Error("Couldn't find a style target. This probably means that the value for the 'insert' parameter is invalid.");t.appendChild(o)}},540(e){e.exports=function(e){var r=document.createElement("style");return e.setAttributes(r,e.attributes),e.insert(r,e.options),r}},56(e,r,o){e.exports=function(e){var r=o.nc;r&&e.setAttribute("nonce",r)}},825(e){e.exports=function(e){if("u"<typeof document)return{update:function(){},remove:function(){}};var r=e.insertStyleElement(e);return{update:function(o){var t,a,n;t="",o.supports&&(t+="@supports (".concat(o.supports,") {")),o.media&&(t+="@media ".concat(o.media," {")),(a=void 0!==o.layer)&&(t+="@layer".concat(o.layer.length>0?" ".concat(o.layer):""," {")),t+=o.css,a&&(t+="}"),o.media&&(t+="}"),o.supports&&(t+="}"),(n=o.sourceMap)&&"u">typeof btoa&&(t+="\n/*# sourceMappingURL=data:application/json;base64,".concat(btoa(unescape(encodeURIComponent(JSON.stringify(n))))," */")),e.styleTagTransform(t,r,e.options)},remove:function(){var e;null===(e=r).parentNode||e.parentNode.removeChild(e)}}}},113(e){e.exports=function(e,r){if(r.styleSheet)r.styleSheet.cssText=e;else{for(;r.firstChild;)r.removeChild(r.firstChild);r.appendChild(document.createTextNode(e))}}},579(e,r,o){var t=o(72),a=o.n(t),n=o(825),p=o.n(n),l=o(659),d=o.n(l),s=o(56),c=o.n(s),i=o(540),u=o.n(i),g=o(113),j=o.n(g),f=o(475),v={};v.styleTagTransform=j(),v.setAttributes=c(),v.insert=d().bind(null,"head"),v.domAPI=p(),v.insertStyleElement=u(),a()(f.A,v),f.A&&f.A.locals&&f.A.locals}}]);