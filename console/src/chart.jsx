// uPlot in a Preact component: created once, fed new data in place (setData), resized with
// its container. Series colours come from one palette so a page's charts agree.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
export const colour = (i) => PALETTE[i % PALETTE.length];

const SECONDS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800];

export function Chart({ title, series, data, height = 220, axes, scales, marks = [], hooks, testid, cursorSync, xLabel = "s" }) {
  const box = useRef(null);
  const plot = useRef(null);
  const shape = JSON.stringify([series.map((s) => [s.label, s.stroke, s.dash, s.scale, s.show]), axes, scales]);
  const zoomed = useRef(false);
  const drawMarks = useRef(marks);
  drawMarks.current = marks;

  // uPlot cannot range an empty series: the plot is made with its first data.
  const hasData = (data[0]?.length || 0) > 0;

  useEffect(() => {
    if (!hasData) return;
    const width = box.current.clientWidth || 600;
    const opts = {
      title,
      width,
      height,
      cursor: { drag: { x: true, y: false }, sync: cursorSync ? { key: cursorSync } : undefined },
      scales: scales || { x: { time: false } },
      axes: axes || [{ label: "seconds", incrs: SECONDS }, {}],
      series: [{ label: xLabel }, ...series.map((s) => ({ width: 1.5, spanGaps: false, ...s }))],
      hooks: {
        ...(hooks || {}),
        setSelect: [
          (u) => {
            if (u.select.width > 0) zoomed.current = true;
          },
        ],
        draw: [
          (u) => {
            // Vertical marks: SLO breaches, events, the knee, change points.
            const ctx = u.ctx;
            ctx.save();
            for (const mark of drawMarks.current) {
              if (mark.x !== undefined) {
                const x = Math.round(u.valToPos(mark.x, "x", true));
                if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
                ctx.strokeStyle = mark.colour || "#6b7280";
                ctx.setLineDash(mark.dash || [4, 4]);
                ctx.lineWidth = 1.5 * devicePixelRatio;
                ctx.beginPath();
                ctx.moveTo(x, u.bbox.top);
                ctx.lineTo(x, u.bbox.top + u.bbox.height);
                ctx.stroke();
                if (mark.label) {
                  ctx.fillStyle = mark.colour || "#374151";
                  ctx.font = `${11 * devicePixelRatio}px sans-serif`;
                  ctx.fillText(mark.label, x + 3 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
                }
              } else if (mark.y !== undefined) {
                const y = Math.round(u.valToPos(mark.y, mark.scale || "y", true));
                if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
                ctx.strokeStyle = mark.colour || "#dc2626";
                ctx.setLineDash(mark.dash || [6, 3]);
                ctx.lineWidth = 1 * devicePixelRatio;
                ctx.beginPath();
                ctx.moveTo(u.bbox.left, y);
                ctx.lineTo(u.bbox.left + u.bbox.width, y);
                ctx.stroke();
                if (mark.label) {
                  ctx.fillStyle = mark.colour || "#dc2626";
                  ctx.font = `${11 * devicePixelRatio}px sans-serif`;
                  ctx.fillText(mark.label, u.bbox.left + 4 * devicePixelRatio, y - 3 * devicePixelRatio);
                }
              }
            }
            ctx.restore();
          },
        ],
      },
    };
    plot.current = new uPlot(opts, data, box.current);
    const reset = () => (zoomed.current = false);
    box.current.addEventListener("dblclick", reset);
    const observer = new ResizeObserver(() => {
      const w = box.current?.clientWidth;
      if (w && plot.current && Math.abs(w - plot.current.width) > 2) plot.current.setSize({ width: w, height });
    });
    observer.observe(box.current);
    return () => {
      observer.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [shape, height, title, hasData]);

  useEffect(() => {
    // Keep a zoom the user made while new seconds arrive; otherwise follow the data.
    plot.current?.setData(data, !zoomed.current);
  }, [data]);

  useEffect(() => {
    plot.current?.redraw(false, false);
  }, [JSON.stringify(marks)]);

  return (
    <div class="chart" ref={box} data-testid={testid} data-points={data[0]?.length || 0}>
      {!hasData && <div class="chart-empty">{title}: no data yet</div>}
    </div>
  );
}
