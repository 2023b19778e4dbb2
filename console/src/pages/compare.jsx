import { useEffect, useState } from "preact/hooks";
import { Link, Loading, Problem, nav, num, useRendered, short, signed, useApi, when } from "../ui.jsx";
import { compared } from "../first.js";
import { Comparisons, Distributions } from "./analysis.jsx";

export function Compare() {
  const [a, setA] = useState(() => compared(location.search).a);
  const [b, setB] = useState(() => compared(location.search).b);
  const result = useApi(a && b ? "/runs/compare" : null, { query: { a, b } }, [a, b]);
  const runB = useApi(b ? `/runs/${b}` : null, undefined, [b]);
  const planId = result.data?.plan_id || runB.data?.plan_id;
  const siblings = useApi(planId ? "/runs" : null, { query: { plan_id: planId, limit: 100 } }, [planId]);

  useRendered("compare", Boolean(result.data || result.error || !(a && b)));

  function choose(which, id) {
    const next = which === "a" ? { a: id, b } : { a, b: id };
    which === "a" ? setA(id) : setB(id);
    nav.go(`/compare?a=${next.a}&b=${next.b}`, true);
  }
  const options = (siblings.data?.items || []).filter((r) => r.finished);
  const picker = (which, value) => (
    <select value={value} onChange={(e) => choose(which, e.target.value)} data-testid={`pick-${which}`}>
      {!options.some((r) => r.id === value) && <option value={value}>{short(value) || "pick a run"}</option>}
      {options.map((r) => (
        <option value={r.id}>
          {short(r.id)} · {when(r.created_at)} · {r.status}
        </option>
      ))}
    </select>
  );
  const c = result.data;
  return (
    <section>
      <h1>Compare runs</h1>
      <p class="bar">
        Reference {picker("a", a)} against {picker("b", b)}
      </p>
      {!(a && b) && <p class="muted">Tick two runs of one plan on the runs page, or pick them here.</p>}
      <Problem error={result.error} />
      {a && b && !c && !result.error && <Loading />}
      {c && (
        <>
          <p class="meta" data-testid="compare-summary">
            <Link to={`/runs/${c.b}`}>{short(c.b)}</Link> against <Link to={`/runs/${c.a}`}>{short(c.a)}</Link>: <strong>{c.regressions}</strong> regressions,{" "}
            <strong>{c.improvements}</strong> improvements
            {c.load && (
              <>
                {" "}
                · throughput {signed(c.load.change?.rps)}
                {c.load.changed && <> (the load changed: {c.load.reasons.join("; ")})</>}
              </>
            )}
          </p>
          {c.doubt && <div class="problem">{c.doubt}</div>}
          {c.warnings?.length > 0 && (
            <ul class="warnings">
              {c.warnings.map((w) => (
                <li>{w}</li>
              ))}
            </ul>
          )}
          <Comparisons rows={c.comparisons} title="Per endpoint and SLI" />
          <Distributions run={c.b} baseline={c.a} labels={[short(c.b), `${short(c.a)} (reference)`]} />
        </>
      )}
    </section>
  );
}
