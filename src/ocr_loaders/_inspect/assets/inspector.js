// The inspector's only script. Model output is data: it is read from a JSON island and put on
// the page with textContent, titles and dataset only; nothing is ever parsed as HTML.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("inspector-data").textContent);
  var COLOURS = {
    title: "#c62828", sub_title: "#ef6c00", text: "#1565c0", table: "#2e7d32",
    table_caption: "#558b2f", table_footnote: "#558b2f", image: "#6a1b9a",
    image_caption: "#8e24aa", figure_title: "#8e24aa", equation: "#4e342e",
    header: "#607d8b", footer: "#607d8b", page_number: "#607d8b", footnote: "#00838f",
    list: "#283593", reference: "#ad1457"
  };
  var boxEls = {};      // "page:box" -> element
  var chunkEls = [];    // chunk index -> list item
  var selected = { chunk: null, box: null };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function colour(label) {
    if (Object.prototype.hasOwnProperty.call(COLOURS, label)) { return COLOURS[label]; }
    var h = 0;
    for (var i = 0; i < label.length; i++) { h = (h * 31 + label.charCodeAt(i)) >>> 0; }
    return "hsl(" + (h % 360) + ", 65%, 40%)";
  }
  function pct(v, size) { return (100 * v / size) + "%"; }
  function fmt(v, digits) {
    return (typeof v === "number") ? v.toFixed(digits) : "n/a";
  }
  function pageRange(c) {
    if (c.page_start === c.page_end || c.page_end === undefined || c.page_end === null) {
      return "p. " + c.page_start;
    }
    return "pp. " + c.page_start + "-" + c.page_end;
  }
  function scrollToPage(n) {
    var p = document.getElementById("page-" + n);
    if (p) { p.scrollIntoView({ block: "start" }); }
  }

  // --- header and summary -----------------------------------------------------------------
  function header() {
    document.title = "Inspector: " + DATA.title;
    document.getElementById("doc-title").textContent = DATA.title;
    var t = DATA.totals;
    document.getElementById("doc-meta").textContent =
      DATA.source + " | " + DATA.engine + " / " + DATA.model + " | " + (t.pages || 0) +
      " page(s), " + (t.vision_tokens || 0) + " vision tokens, compression " +
      fmt(t.compression_ratio, 2) + (DATA.complete ? "" : " | INCOMPLETE RUN");
    var notes = document.getElementById("notes");
    var all = DATA.notes.slice();
    if (!DATA.layout) {
      all.push("only chunk regions are drawn: run convert with --html to keep every block's box");
    }
    all.forEach(function (n) { notes.appendChild(el("li", "", n)); });

    var counts = document.getElementById("status-counts");
    var byStatus = {}, byRisk = {};
    DATA.pages.forEach(function (p) {
      byStatus[p.status] = (byStatus[p.status] || 0) + 1;
      if (p.risk) { byRisk[p.risk] = (byRisk[p.risk] || 0) + 1; }
    });
    Object.keys(byStatus).sort().forEach(function (k) {
      var s = el("span", "count status-" + k, k + ": " + byStatus[k]);
      s.dataset.status = k;
      counts.appendChild(s);
    });
    Object.keys(byRisk).sort().forEach(function (k) {
      counts.appendChild(el("span", "count", "risk " + k + ": " + byRisk[k]));
    });

    var flagged = DATA.pages.filter(function (p) { return p.flags.length > 0; });
    flagged.sort(function (a, b) {
      var fa = DATA.flag_order.indexOf(a.flags[0]), fb = DATA.flag_order.indexOf(b.flags[0]);
      return fa !== fb ? fa - fb : a.page - b.page;
    });
    var list = document.getElementById("flagged");
    if (flagged.length === 0) { list.appendChild(el("li", "muted", "no flagged page")); }
    flagged.forEach(function (p) {
      var li = el("li");
      var b = el("button", "chip", "page " + p.label + ": " + p.flags.join(", "));
      b.type = "button";
      b.addEventListener("click", function () { scrollToPage(p.page); });
      li.appendChild(b);
      list.appendChild(li);
    });

    var chart = document.getElementById("ratio-chart");
    var labels = document.getElementById("ratio-labels");
    var max = Math.max.apply(null, DATA.histogram.map(function (b) { return b.count; }).concat([1]));
    DATA.histogram.forEach(function (b) {
      var bar = el("div", "bar " + (b.lo >= 20 ? "lossy" : b.lo >= 10 ? "at_risk" : "fine"));
      bar.style.height = (b.count ? Math.max(3, 86 * b.count / max) : 0) + "px";
      bar.title = b.count + " page(s) with ratio " + b.lo + (b.hi === null ? "+" : "-" + b.hi);
      chart.appendChild(bar);
      labels.appendChild(el("span", "", b.lo));
    });
  }

  // --- pages --------------------------------------------------------------------------------
  var observer = ("IntersectionObserver" in window) ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      if (e.isIntersecting) { loadImage(e.target); observer.unobserve(e.target); }
    });
  }, { rootMargin: "1200px 0px" }) : null;

  function loadImage(frame) {
    var img = frame.querySelector("img");
    if (img && !img.getAttribute("src")) { img.src = img.dataset.src; }
  }

  function badge(text, cls) { return el("span", "badge" + (cls ? " " + cls : ""), text); }

  function drawPage(p) {
    var sec = el("section", "page" + (p.flags.length ? " flag" : ""));
    sec.id = "page-" + p.page;
    sec.dataset.page = p.page;
    sec.appendChild(el("h2", "", "Page " + p.page + (String(p.label) !== String(p.page) ? " (" + p.label + ")" : "")));
    var b = el("div", "badges");
    b.appendChild(badge(p.status, p.status));
    b.appendChild(badge("compression " + fmt(p.ratio, 2), ""));
    if (p.risk) { b.appendChild(badge(p.risk, p.risk)); }
    b.appendChild(badge((p.vision_tokens === null || p.vision_tokens === undefined ? "?" : p.vision_tokens) + " vision tokens", ""));
    b.appendChild(badge((p.text_tokens === null || p.text_tokens === undefined ? "?" : p.text_tokens) + " text tokens", ""));
    if (p.cached) { b.appendChild(badge("cached", "")); }
    if (typeof p.coverage === "number") { b.appendChild(badge("coverage " + (100 * p.coverage).toFixed(0) + "%", p.flags.indexOf("low coverage") >= 0 ? "flagword" : "")); }
    if (p.verification) { b.appendChild(badge("verification: " + p.verification, "")); }
    if (p.missed.length) { b.appendChild(badge(p.missed.length + " missed region(s)", "flagword")); }
    b.appendChild(badge(p.boxes.length + " box(es)", ""));
    sec.appendChild(b);
    if (p.error) { sec.appendChild(el("div", "error", p.error)); }

    var frame = el("div", "frame");
    frame.style.aspectRatio = p.width + " / " + p.height;
    if (p.image) {
      var img = el("img");
      img.alt = "page " + p.page;
      img.dataset.src = p.image;
      frame.appendChild(img);
      if (observer) { observer.observe(frame); } else { loadImage(frame); }
    } else {
      frame.appendChild(el("div", "noimage", "no page image"));
    }
    p.boxes.forEach(function (box, i) {
      var d = el("div", "box");
      var c = colour(box.label);
      d.style.left = pct(box.bbox[0], p.width);
      d.style.top = pct(box.bbox[1], p.height);
      d.style.width = pct(box.bbox[2] - box.bbox[0], p.width);
      d.style.height = pct(box.bbox[3] - box.bbox[1], p.height);
      d.style.borderColor = c;
      d.dataset.page = p.page;
      d.dataset.box = i;
      d.dataset.label = box.label;
      d.dataset.bbox = JSON.stringify(box.bbox);
      d.title = (box.order === null ? "" : "#" + box.order + " ") + box.label +
        (box.text ? "\n" + box.text.slice(0, 600) : "");
      var tag = el("span", "tag", (box.order === null ? "" : box.order + " ") + box.label);
      tag.style.background = c;
      d.appendChild(tag);
      d.addEventListener("click", function (ev) { ev.stopPropagation(); selectBox(p, i); });
      boxEls[p.page + ":" + i] = d;
      frame.appendChild(d);
    });
    p.missed.forEach(function (m) {
      var d = el("div", "missed");
      d.style.left = pct(m[0], p.width);
      d.style.top = pct(m[1], p.height);
      d.style.width = pct(m[2] - m[0], p.width);
      d.style.height = pct(m[3] - m[1], p.height);
      d.title = "missed region";
      frame.appendChild(d);
    });
    sec.appendChild(frame);
    return sec;
  }

  // --- chunks ---------------------------------------------------------------------------------
  function drawChunks() {
    var list = document.getElementById("chunk-list");
    DATA.chunks.forEach(function (c, k) {
      var item = el("div", "chunk");
      item.dataset.chunk = k;
      item.tabIndex = 0;
      var kind = c.figure ? "figure" : "chunk";
      var meta = kind + " " + (c.index === null || c.index === undefined ? k : c.index) + " | " +
        pageRange(c) + " | " + c.regions.length + " region(s)" + (c.status && c.status !== "ok" ? " | " + c.status : "");
      item.appendChild(el("div", "meta", meta));
      if (c.heading) { item.appendChild(el("div", "meta", c.heading)); }
      item.appendChild(el("div", "snippet", c.text.slice(0, 400)));
      item.addEventListener("click", function () { selectChunk(k, true); });
      item.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { selectChunk(k, true); } });
      chunkEls.push(item);
      list.appendChild(item);
    });
    var search = document.getElementById("search");
    var count = document.getElementById("chunk-count");
    function filter() {
      var q = search.value.trim().toLowerCase();
      var shown = 0;
      DATA.chunks.forEach(function (c, k) {
        var hit = !q || c.text.toLowerCase().indexOf(q) >= 0 || c.heading.toLowerCase().indexOf(q) >= 0;
        chunkEls[k].hidden = !hit;
        if (hit) { shown++; }
      });
      count.textContent = shown + " of " + DATA.chunks.length + " chunk(s)";
    }
    search.addEventListener("input", filter);
    filter();
  }

  function clearHighlights() {
    document.querySelectorAll(".box.hl, .box.sel").forEach(function (e) { e.classList.remove("hl", "sel"); });
    document.querySelectorAll(".chunk.active, .chunk.contains").forEach(function (e) { e.classList.remove("active", "contains"); });
  }

  function selectChunk(k, scroll) {
    clearHighlights();
    var c = DATA.chunks[k];
    selected.chunk = k;
    chunkEls[k].classList.add("active");
    var first = null;
    c.regions.forEach(function (r) {
      var e = boxEls[r[0] + ":" + r[1]];
      if (e) { e.classList.add("hl"); if (!first) { first = e; } }
    });
    if (scroll && first) { first.scrollIntoView({ block: "center" }); }
    showDetail((c.figure ? "Figure" : "Chunk") + " " + (c.index === null ? k : c.index) + " (" + pageRange(c) + ")",
      c.id, c.text, []);
  }

  function selectBox(p, i) {
    clearHighlights();
    var box = p.boxes[i];
    boxEls[p.page + ":" + i].classList.add("sel");
    var firstChunk = null;
    box.chunks.forEach(function (k) {
      chunkEls[k].classList.add("contains");
      if (firstChunk === null) { firstChunk = chunkEls[k]; }
    });
    if (firstChunk) { firstChunk.scrollIntoView({ block: "nearest" }); }
    var head = "Page " + p.page + ", " + (box.order === null ? "" : "block " + box.order + ", ") + box.label;
    showDetail(head, "box [" + box.bbox.map(function (v) { return v.toFixed(1); }).join(", ") + "] (page units)",
      box.text || "(text not kept: see the chunk)", box.chunks);
  }

  function showDetail(head, sub, text, chunks) {
    var d = document.getElementById("detail");
    d.textContent = "";
    var close = el("button", "close", "close");
    close.type = "button";
    close.addEventListener("click", function () { d.hidden = true; clearHighlights(); });
    d.appendChild(close);
    d.appendChild(el("strong", "", head));
    d.appendChild(el("div", "muted", sub));
    if (chunks.length) {
      var line = el("div", "", "In chunk(s): ");
      line.id = "detail-chunks";
      chunks.forEach(function (k) {
        var b = el("button", "chip", "#" + (DATA.chunks[k].index === null ? k : DATA.chunks[k].index));
        b.type = "button";
        b.dataset.chunk = k;
        b.addEventListener("click", function () { selectChunk(k, true); chunkEls[k].scrollIntoView({ block: "nearest" }); });
        line.appendChild(b);
      });
      d.appendChild(line);
    } else if (head.indexOf("Page") === 0) {
      d.appendChild(el("div", "muted", "In no chunk."));
    }
    d.appendChild(el("div", "text", text));
    d.hidden = false;
  }

  header();
  var pages = document.getElementById("pages");
  DATA.pages.forEach(function (p) { pages.appendChild(drawPage(p)); });
  drawChunks();
  document.body.dataset.ready = "1";
}());
