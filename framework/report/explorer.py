"""Looking at a run's items in report.html: filter the answers table and the gallery (wrong, failed, slow, by cell,
by group field, by text), sort by error or latency, and open an item's replies, attempts and errors.

The page stays one self-contained file: the figures the filters need are a JSON island beside the table (one entry
per row, in the table's order), read by a short script; nothing is fetched. The state is kept in the page's address
(``report.html#state=wrong&cell=2&sort=error``), so a view can be shared and reopened.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from html import escape
from typing import Any

from visionbench.results.model import Bundle
from visionbench.results.records import Records
from visionbench.results.scoring import abs_error, matches, task_answer_type

#: A reply is shown up to this many characters.
REPLY_CHARS = 400
#: Replies of right answers are kept only while the table has at most this many answers (items x cells); the
#: wrong and failed ones' always.
ALL_REPLIES_UP_TO = 20_000

RIGHT, WRONG, FAILED, NOT_ASKED, UNLABELLED = range(5)


def explorer_data(
    bundle: Mapping[str, Any], cell_ids: Sequence[str], items: Sequence[Any], field: str | None
) -> dict[str, Any]:
    """What the filters read, per row of the answers table (``items``, in its order) and per cell of its columns
    (``cell_ids``, first repeat): each answer's state, error, latency, attempts, error message and reply."""
    bundle = Bundle.of(bundle)
    entries = {e.id: e for e in bundle.entries_of(repeat=0) if e.id in set(cell_ids)}
    answer_type = task_answer_type(bundle)
    wanted = {item.id for item in items}
    index = {cell: n for n, cell in enumerate(cell_ids)}
    sent: dict[tuple[int, str], tuple[float | None, int, str | None, str | None]] = {}
    factor = bundle.to_modelled
    for record in records_about(bundle.records, wanted):  # an item's last record in a cell made its final answer
        n = index.get(record["cell"])
        if n is None or record.get("repeat", 0) != 0 or record.get("judge"):
            continue
        error = record.get("error")
        message = f"{error.get('kind')}: {error.get('message')}" if error else None
        reply = record.get("raw_text")
        replayed = record.get("replayed")
        # a replayed answer took no time of this run's; an emulated run's in its services' seconds
        latency = None if replayed else record["latency_s"] * factor
        for item_id in record["item_ids"]:
            if item_id in wanted:
                sent[n, item_id] = (
                    latency,
                    record["attempts"],
                    message or replayed and f"replayed from {replayed}",
                    reply,
                )
    keep_all = len(items) * len(cell_ids) <= ALL_REPLIES_UP_TO
    rows = []
    for item in items:
        states, errors, latencies, details = [], [], [], []
        for n, cell in enumerate(cell_ids):
            entry = entries.get(cell)
            answer = entry.answers.get(item.id) if entry is not None else None
            state, error = _state(answer, item.label, answer_type)
            states.append(state)
            errors.append(error)
            latency, attempts, message, reply = sent.get((n, item.id), (None, 0, None, None))
            latencies.append(None if latency is None else round(latency, 4))
            if reply is not None and not keep_all and state == RIGHT:
                reply = None
            details.append([attempts, message, reply[:REPLY_CHARS] if reply is not None else None])
        group = (item.fields or {}).get(field) if field else None
        rows.append(
            {"g": None if group is None else str(group), "s": states, "e": errors, "l": latencies, "d": details}
        )
    return {"cells": list(cell_ids), "field": field, "items": rows, "all_replies": keep_all}


def records_about(records: Sequence[Mapping[str, Any]], wanted: set[str]) -> Iterator[Mapping[str, Any]]:
    """The records about any of the ``wanted`` items (a file's: the others are not parsed)."""
    if isinstance(records, Records):
        return records.with_items(wanted)
    return (r for r in records if not wanted.isdisjoint(r["item_ids"]))


def _state(answer: Any, label: Any, answer_type: str | None) -> tuple[int, float | None]:
    """An answer's state and its error (numeric tasks: the absolute error; else 1 when wrong, 0 when right)."""
    if answer is None:
        return NOT_ASKED, None
    if answer.error is not None:
        return FAILED, None
    if label is None:
        return UNLABELLED, None
    if matches(answer.value, label, answer_type):
        return RIGHT, 0.0
    error = abs_error(answer.value, label, answer_type)
    return WRONG, float(error) if error is not None else 1.0


def explorer_html(data: dict[str, Any], names: Sequence[str], groups: Sequence[str]) -> str:
    """The filter bar, the figures as a JSON island and the script, to go just before the answers table."""
    options = "".join(f'<option value="{n}">{escape(name)}</option>' for n, name in enumerate(names))
    group_select = ""
    if data["field"] and groups:
        values = "".join(f'<option value="{escape(g, quote=True)}">{escape(g)}</option>' for g in groups)
        group_select = (
            f'<label>{escape(data["field"])} <select data-k="group"><option value="">any</option>{values}</select>'
            "</label>"
        )
    # no "<" at all inside the island: neither "</script>" nor "<!--" in a reply can end or bend it
    island = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    return (
        '<div id="vb-filter" class="filter">'
        '<label>show <select data-k="state"><option value="">every item</option><option value="wrong">wrong</option>'
        '<option value="failed">failed</option><option value="slow">slow (above the cell\'s p90 latency)</option>'
        '<option value="right">right</option></select></label>'
        f' <label>in <select data-k="cell"><option value="">any cell</option>{options}</select></label> '
        f"{group_select}"
        ' <label>text <input data-k="q" type="search" placeholder="image, label or answer"></label>'
        ' <label>sort <select data-k="sort"><option value="">as listed</option>'
        '<option value="error">by error, largest first</option>'
        '<option value="latency">by latency, slowest first</option></select></label>'
        ' <span id="vb-count" class="note"></span></div>'
        "<p class=\"note\">Click an image's row for each cell's answer, attempts, error and reply"
        + ("" if data["all_replies"] else " (replies kept for the wrong and failed answers only, in a table this big)")
        + ". The filters apply to the gallery too; the page's address keeps them.</p>"
        f'<script type="application/json" id="vb-data">{island}</script>'
        f"<script>{SCRIPT}</script>"
    )


CSS = """
.filter{position:sticky;top:0;background:#fff;padding:6px 0;z-index:2;border-bottom:1px solid #ddd}
.filter label{margin-right:10px;font-size:13px}
tr.vb-open td{background:#eef4ff}
tr.vb-detail td{background:#fafafa;text-align:left;font-size:12px}
tr.vb-detail .vb-wrap{display:flex;flex-wrap:wrap;width:90vw;max-width:1100px;position:sticky;left:0}
tr.vb-detail .vb-wrap>div{width:260px;margin:2px 10px 6px 0}
tr.vb-detail pre{white-space:pre-wrap;margin:2px 0;max-height:8em;overflow:auto}
#vb-items tbody tr:not(.vb-detail){cursor:pointer}
"""

# Vanilla JavaScript over the table #vb-items (one row per entry of the island, in order) and the gallery's cards
# (data-item). States: 0 right, 1 wrong, 2 failed, 3 not asked, 4 answered without a label.
SCRIPT = r"""
document.addEventListener('DOMContentLoaded',function(){
const data=JSON.parse(document.getElementById('vb-data').textContent);
const table=document.getElementById('vb-items'); if(!table) return;
const body=table.tBodies[0]; const rows=Array.from(body.rows); const items=data.items;
const bar=document.getElementById('vb-filter'); const count=document.getElementById('vb-count');
const cards=Array.from(document.querySelectorAll('.gallery .card[data-item]'));
const ids=rows.map(r=>r.cells[0].textContent);
const p90=data.cells.map((_,c)=>{const v=items.map(i=>i.l[c]).filter(x=>x!==null).sort((a,b)=>a-b);
  return v.length?v[Math.min(v.length-1,Math.floor(0.9*(v.length-1)+0.5))]:Infinity;});
const text=rows.map(r=>r.textContent.toLowerCase());let sorted='|';
function state(){const s={};bar.querySelectorAll('[data-k]').forEach(e=>{if(e.value)s[e.dataset.k]=e.value;});return s;}
function read(){const h=new URLSearchParams(location.hash.slice(1));
  bar.querySelectorAll('[data-k]').forEach(e=>{if(h.has(e.dataset.k))e.value=h.get(e.dataset.k);});}
function cellsOf(s){return s.cell!==undefined?[Number(s.cell)]:data.cells.map((_,c)=>c);}
function keep(i,s){const it=items[i];const cs=cellsOf(s);
  if(s.group!==undefined&&it.g!==s.group)return false;
  if(s.q&&!text[i].includes(s.q.toLowerCase()))return false;
  if(!s.state)return true;
  return cs.some(c=>s.state==='wrong'?it.s[c]===1:s.state==='failed'?it.s[c]===2:s.state==='right'?it.s[c]===0:
    (it.l[c]!==null&&it.l[c]>p90[c]));}
function key(i,s){const it=items[i];const cs=cellsOf(s);
  if(s.sort==='error')return Math.max(...cs.map(c=>it.s[c]===2?Infinity:(it.e[c]===null?-1:it.e[c])));
  if(s.sort==='latency')return Math.max(...cs.map(c=>it.l[c]===null?-1:it.l[c]));return 0;}
function apply(){const t0=performance.now();const s=state();
  body.querySelectorAll('tr.vb-detail').forEach(r=>r.remove());rows.forEach(r=>r.classList.remove('vb-open'));
  let order=rows.map((_,i)=>i);if(s.sort){const k=order.map(i=>key(i,s));order.sort((a,b)=>k[b]-k[a]||a-b);}
  const how=(s.sort||'')+'|'+(s.sort?s.cell||'':'');const moved=how!==sorted;sorted=how;
  const shown=new Set();const frag=document.createDocumentFragment();
  for(const i of order){const ok=keep(i,s);if(rows[i].hidden===ok)rows[i].hidden=!ok;if(ok)shown.add(ids[i]);
    if(moved)frag.appendChild(rows[i]);}
  if(moved)body.appendChild(frag);
  cards.forEach(c=>{c.hidden=!shown.has(c.dataset.item);});
  count.textContent=shown.size.toLocaleString('en')+' of '+rows.length.toLocaleString('en')+' images';
  document.body.dataset.vbShown=shown.size;document.body.dataset.vbMs=(performance.now()-t0).toFixed(1);
  const h=new URLSearchParams(s).toString();try{history.replaceState(null,'',h?'#'+h:location.pathname);}catch(e){}}
function detail(i){const it=items[i];const tr=document.createElement('tr');tr.className='vb-detail';
  const td=document.createElement('td');td.colSpan=rows[i].cells.length;
  const names=Array.from(table.tHead.rows[0].cells).slice(2);
  const word=['right','wrong','failed','not asked','answered'];
  const esc=x=>String(x).replace(/&/g,'&amp;').replace(/</g,'&lt;').replace(/>/g,'&gt;').replace(/"/g,'&quot;');
  td.innerHTML='<div class="vb-wrap">'+data.cells.map((_,c)=>{const d=it.d[c];
    return '<div><b>'+esc(names[c]?names[c].textContent:c)+'</b>: '+word[it.s[c]]+(it.l[c]!==null?', '+it.l[c]+' s':'')+
      ', '+d[0]+' attempt(s)'+(d[1]?'<pre>'+esc(d[1])+'</pre>':'')+
      (d[2]!==null?'<pre>'+esc(d[2])+'</pre>':'')+'</div>';}).join('')+'</div>';
  tr.appendChild(td);return tr;}
body.addEventListener('click',e=>{const r=e.target.closest('tr');if(!r||r.classList.contains('vb-detail'))return;
  const i=rows.indexOf(r);if(i<0)return;const next=r.nextElementSibling;
  if(next&&next.classList.contains('vb-detail')){next.remove();r.classList.remove('vb-open');return;}
  r.after(detail(i));r.classList.add('vb-open');});
bar.addEventListener('input',apply);read();apply();
});
"""


__all__ = ["CSS", "explorer_data", "explorer_html"]
