/**
 * A serving package's live view in the registry panel: its versions and how the traffic
 * splits between them, shadow agreement and latency over time, the latest challenge
 * report, and the Promote challenger action (a promotion request to @champion).
 */
import * as React from 'react';

import { formatTime, formatValue } from '../format';
import { ApiError, Params, postAPI } from '../request';
import { IChallengeReport, IPackageSummary, IPromotionRequest, ITraffic, ITrafficBucket } from '../tokens';

/** The request the Promote action opened: its checks may have moved the alias already. */
type Opened = Pick<IPromotionRequest, 'request_id' | 'ref' | 'alias'> & { status: string };
import { ISeries, LineChart } from './chart';
import { ErrorBox, Loading, Section } from './common';
import { useApi } from './useapi';

export function Serving(props: {
  storeParams: Params;
  refreshInterval: number;
  openRun: (runId: string) => void;
  onPromoted: () => void;
}): JSX.Element {
  const { data, error } = useApi<IPackageSummary[]>('packages', props.storeParams, () => true,
    props.refreshInterval);
  const [chosen, setChosen] = React.useState<string | null>(null);
  const current = data?.find(p => p.package_id === chosen) ?? data?.[0];
  return (
    <Section title="Serving" count={data?.length}>
      {error && <ErrorBox message={error.message} />}
      {!data && !error && <Loading what="the packages" />}
      {data && !data.length && (
        <div className="nbt-empty">
          No package yet: make one with <code>nt.package("churn@champion", shadow=["churn@challenger"])</code>.
        </div>
      )}
      {current && (
        <>
          <label className="nbt-hint nbt-package-pick">
            Package
            <select aria-label="Package" value={current.package_id}
              onChange={e => setChosen(e.target.value)}>
              {data!.map(p => (
                <option key={p.package_id} value={p.package_id}>
                  {p.name} ({p.package_id.slice(0, 14)}…, {formatTime(p.created_at)})
                </option>
              ))}
            </select>
          </label>
          <PackageView key={current.package_id} packageId={current.package_id} {...props} />
        </>
      )}
    </Section>
  );
}

function PackageView(props: {
  packageId: string;
  storeParams: Params;
  refreshInterval: number;
  openRun: (runId: string) => void;
  onPromoted: () => void;
}): JSX.Element {
  const { data, error } = useApi<ITraffic>(`packages/${encodeURIComponent(props.packageId)}/traffic`,
    props.storeParams, () => true, props.refreshInterval);
  if (error && !data) {
    return <ErrorBox message={error.message} />;
  }
  if (!data) {
    return <Loading what="the package's traffic" />;
  }
  const totals = new Map(data.totals.map(t => [t.version, t]));
  return (
    <div className="nbt-package-live" role="group" aria-label={`Package ${data.name}`}>
      {error && <ErrorBox title="Refresh failed" message={error.message} />}
      <div className="nbt-table-scroll">
        <table className="nbt-table" aria-label={`Versions of package ${data.name}`}>
          <thead>
            <tr>
              {['role', 'version', 'answers', 'rows', 'errors', 'dropped', 'agreement'].map(c => (
                <th key={c} scope="col">{c}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {data.versions.map(v => {
              const t = totals.get(v.version);
              return (
                <tr key={v.version} title={`model ${v.model_id}`}>
                  <th scope="row">{v.role}{v.role === 'canary' ? ` ${percent(v.share)}` : ''}</th>
                  <td>{v.ref ?? v.version}</td>
                  <td>{t ? percent(t.share) : '–'}</td>
                  <td>{t?.rows ?? 0}</td>
                  <td>{t?.errors ?? 0}</td>
                  <td>{t?.dropped ?? 0}</td>
                  <td>{t?.agreement === null || !t ? '–' : percent(t.agreement)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <div className="nbt-hint">
        {data.log_dirs.length
          ? `${data.lines_read} logged rows${data.truncated ? ' (the newest; older ones left out)' : ''} from ${data.log_dirs.join(', ')}`
          : 'No log recorded: serve the package with nt.serve(pkg, log_dir=…) or nbtrail serve --log-dir.'}
      </div>
      {data.timeline.length > 0 && (
        <>
          <LineChart title="Shadow agreement with the champion" series={series(data.timeline, 'agreement', true)}
            xLabel="minutes" />
          <LineChart title="Latency p99 (ms)" series={series(data.timeline, 'latency_p99_ms')} xLabel="minutes" />
          <LineChart title="Share of answers" series={series(data.timeline, 'share')} xLabel="minutes" />
        </>
      )}
      {data.challenge ? (
        <Challenge report={data.challenge} openRun={props.openRun} />
      ) : (
        <div className="nbt-empty">
          No challenge report yet: <code>nt.challenge(log_dir, labels=…)</code> compares the versions.
        </div>
      )}
      <Promote traffic={data} storeParams={props.storeParams} onPromoted={props.onPromoted} />
    </div>
  );
}

/** One series a version: ``column`` per bucket, minutes since the first bucket on x. */
function series(timeline: ITrafficBucket[], column: keyof ITrafficBucket, challengersOnly = false): ISeries[] {
  const start = Math.min(...timeline.map(b => Date.parse(b.time)));
  const byVersion = new Map<string, ISeries>();
  for (const b of timeline) {
    if (challengersOnly && b.role === 'champion') {
      continue;
    }
    const label = `${b.role} ${b.version}`;
    const s = byVersion.get(label) ?? { label, points: [] };
    s.points.push([(Date.parse(b.time) - start) / 60000, b[column] as number | null]);
    byVersion.set(label, s);
  }
  return [...byVersion.values()];
}

function percent(value: number | null | undefined): string {
  return value === null || value === undefined ? '–' : `${(value * 100).toFixed(1)}%`;
}

function Challenge(props: { report: IChallengeReport; openRun: (runId: string) => void }): JSX.Element {
  const r = props.report;
  const runId = r.run_id;
  return (
    <div className="nbt-challenge" role="group" aria-label="Latest challenge report">
      <div className={r.versions.some(v => v.significantly_worse) ? 'nbt-error' : 'nbt-success'}>
        <b>Latest challenge:</b> {r.verdict}
      </div>
      <div className="nbt-hint">
        {formatTime(r.created_at)} · log {r.source}
        {runId && (
          <>
            {' · '}
            <a href="#" onClick={e => { e.preventDefault(); props.openRun(runId); }}>monitoring run</a>
          </>
        )}
      </div>
      {r.metric_name && (
        <div className="nbt-table-scroll">
          <table className="nbt-table" aria-label="Challenge metrics">
            <thead>
              <tr>
                {['version', 'role', r.metric_name, 'difference', 'interval'].map(c => (
                  <th key={c} scope="col">{c}</th>
                ))}
              </tr>
            </thead>
            <tbody>
              {r.versions.map(v => (
                <tr key={v.version} className={v.significantly_worse ? 'nbt-highlight' : undefined}>
                  <th scope="row">{v.version}</th>
                  <td>{v.role}</td>
                  <td>{formatValue(v.metric)}</td>
                  <td>{v.role === 'champion' ? '' : formatValue(v.difference)}</td>
                  <td>
                    {v.difference_low === null || v.difference_high === null
                      ? ''
                      : `[${formatValue(v.difference_low)}, ${formatValue(v.difference_high)}]`}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

/** Promote challenger: a promotion request to @champion, with the evidence the view holds. */
function Promote(props: { traffic: ITraffic; storeParams: Params; onPromoted: () => void }): JSX.Element | null {
  const challengers = props.traffic.versions.filter(v => v.role !== 'champion' && v.ref !== null);
  const [version, setVersion] = React.useState<string>('');
  const [note, setNote] = React.useState('');
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);
  const [opened, setOpened] = React.useState<Opened | null>(null);
  if (!challengers.length) {
    return null;
  }
  const promote = async () => {
    setBusy(true);
    setError(null);
    setOpened(null);
    try {
      setOpened(await postAPI<Opened>(
        `packages/${encodeURIComponent(props.traffic.package_id)}/promote`,
        { version: version || null, note: note.trim() || null }, props.storeParams));
      props.onPromoted();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="nbt-promote" aria-label="Promote challenger">
      <div className="nbt-action-row">
        {challengers.length > 1 && (
          <select aria-label="Challenger" value={version} disabled={busy}
            onChange={e => setVersion(e.target.value)}>
            <option value="">best by the challenge report</option>
            {challengers.map(v => <option key={v.version} value={v.version}>{v.ref}</option>)}
          </select>
        )}
        <input type="text" className="nbt-input" aria-label="Promotion note" placeholder="note (optional)"
          value={note} disabled={busy} onChange={e => setNote(e.target.value)} />
        <button className="nbt-button nbt-primary" disabled={busy} onClick={() => void promote()}
          title="Open a promotion request to @champion; its checks run and someone approves it">
          Promote challenger
        </button>
      </div>
      {opened && (
        <div className="nbt-success" role="status" aria-label="Promotion result">
          Request #{opened.request_id}: <b>{opened.ref}</b> → @{opened.alias} is {opened.status}
        </div>
      )}
      {error && <div className="nbt-error nbt-inline-error" role="alert">{error}</div>}
    </div>
  );
}
