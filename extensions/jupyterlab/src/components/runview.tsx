/** One run: params, metric curves, data sets with statistics, artifacts, git, env, lineage. */
import * as React from 'react';

import { formatBytes, formatDuration, formatTime, formatValue } from '../format';
import { Params } from '../request';
import { IDataset, ILineage, IRunDetails, Value } from '../tokens';
import { LineChart } from './chart';
import { ErrorBox, KeyValues, Loading, Section, StatusBadge } from './common';
import { artifactUrl, RunMedia } from './media';
import { PackageAction } from './package';
import { RegisterAction } from './registry';
import { useApi } from './useapi';

export function RunView(props: {
  runId: string;
  storeParams: Params;
  refreshInterval: number;
  buildImage: boolean;
  openRun: (runId: string) => void;
}): JSX.Element {
  const { data, error } = useApi<IRunDetails>(
    `runs/${encodeURIComponent(props.runId)}`,
    props.storeParams,
    d => d.run.status === 'running',
    props.refreshInterval
  );
  if (!data) {
    return error ? <ErrorBox message={error.message} /> : <Loading what="the run" />;
  }
  const { run, histories, media, lineage } = data;
  const title = run.name ?? run.run_id;
  const curves = Object.entries(histories).filter(([, h]) => h.points.length >= 2);
  // The model the run logged last: what Package and Register act on.
  const modelName = run.models.length ? formatValue(run.models[run.models.length - 1].name) : null;
  return (
    <div className="nbt-view" aria-label={`Run ${title}`}>
      <header className="nbt-view-header">
        <h2>
          {title} <StatusBadge status={run.status} />
        </h2>
        <div className="nbt-meta">
          <code>{run.run_id}</code> · experiment <b>{run.experiment}</b> · started {formatTime(run.start_time)}
          {run.duration !== null && <> · {formatDuration(run.duration)}</>}
          {run.notebook && <> · notebook <code>{run.notebook}</code></>}
          {run.parent_id && (
            <>
              {' '}· child of{' '}
              <a href="#" onClick={e => { e.preventDefault(); props.openRun(run.parent_id!); }}>
                {run.parent_id.slice(0, 10)}
              </a>
            </>
          )}
        </div>
        {error && <ErrorBox title="Refresh failed" message={error.message} />}
        {run.error && <ErrorBox title="The run failed" message={run.error} />}
      </header>
      {modelName !== null && (
        <>
          <PackageAction
            ref_={run.run_id}
            what={`model ${modelName}`}
            storeParams={props.storeParams}
            buildImage={props.buildImage}
          />
          <RegisterAction runId={run.run_id} modelName={modelName} storeParams={props.storeParams} />
        </>
      )}
      <div className="nbt-columns-2">
        <Section title="Params" count={Object.keys(run.params).length}>
          <KeyValues values={run.params} label="Params" />
        </Section>
        <Section title="Metrics" count={Object.keys(run.metrics).length}>
          <KeyValues values={run.metrics} label="Metrics" />
        </Section>
      </div>
      {curves.length > 0 && (
        <Section title="Metric charts">
          <div className="nbt-charts">
            {curves.map(([key, h]) => (
              <LineChart
                key={key}
                title={h.total > h.points.length ? `${key} (${h.points.length} of ${h.total} points)` : key}
                series={[{ label: key, points: h.points }]}
                xLabel="step"
              />
            ))}
          </div>
        </Section>
      )}
      <RunMedia runId={run.run_id} media={media} storeParams={props.storeParams} />
      <Section title="Data sets" count={run.datasets.length}>
        {run.datasets.length ? run.datasets.map(d => <DatasetView key={`${d.dataset_id}-${d.role}-${d.name}`} dataset={d} />)
          : <div className="nbt-empty">no data set logged</div>}
      </Section>
      <Section title="Models" count={run.models.length}>
        {run.models.map(m => (
          <KeyValues key={String(m.model_id)} label={`Model ${formatValue(m.name)}`} values={{
            name: m.name, model_id: m.model_id, class: m.class_name, format: m.format,
            size: formatBytes(m.size_bytes as number), trained_on: m.training_dataset_id
          }} />
        ))}
        {!run.models.length && <div className="nbt-empty">no model logged</div>}
      </Section>
      <Section title="Artifacts" count={run.artifacts.length}>
        {run.artifacts.length ? (
          <ul className="nbt-list">
            {run.artifacts.map(a => (
              <li key={a.name}>
                <a href={artifactUrl(run.run_id, a.name, props.storeParams)}
                  download={a.name.split('/').pop()}>
                  {a.name}
                </a>{' '}
                <span className="nbt-hint">{formatBytes(a.size_bytes)} · {a.sha256.slice(0, 12)}</span>
              </li>
            ))}
          </ul>
        ) : <div className="nbt-empty">no artifact logged</div>}
      </Section>
      <Section title="Git">
        {run.git ? (
          <>
            <KeyValues label="Git" values={{
              branch: run.git.branch, commit: run.git.commit,
              dirty: run.git.dirty === null ? null : run.git.dirty ? 'yes: uncommitted changes were snapshotted' : 'no',
              snapshot: run.git.snapshot, repository: run.git.root
            }} />
            {run.git.snapshot && (
              <div className="nbt-hint">
                The code as it ran: <code>git -C {run.git.root} show --stat {run.git.snapshot}</code>, or
                re-execute it with <code>nbtrail reproduce {run.run_id}</code>.
              </div>
            )}
          </>
        ) : <div className="nbt-empty">{run.git_note}</div>}
      </Section>
      <Section title="Environment">
        {run.env ? (
          <>
            <KeyValues label="Environment" values={{
              python: run.env.python, platform: run.env.platform,
              packages: run.env.packages ? Object.keys(run.env.packages).length : null,
              ...Object.fromEntries(Object.entries(run.seeds).map(([k, v]) => [`seed ${k}`, v]))
            }} />
            {run.env.packages && (
              <details>
                <summary>packages</summary>
                <KeyValues label="Packages" values={run.env.packages} />
              </details>
            )}
          </>
        ) : <div className="nbt-empty">not captured</div>}
      </Section>
      {Object.keys(run.tags).length > 0 && (
        <Section title="Tags" count={Object.keys(run.tags).length}>
          <KeyValues label="Tags" values={run.tags} />
        </Section>
      )}
      <Section title="Lineage">
        <LineageView lineage={lineage} openRun={props.openRun} />
      </Section>
    </div>
  );
}

function DatasetView(props: { dataset: IDataset }): JSX.Element {
  const d = props.dataset;
  const stats = d.stats ?? {};
  const names = (d.schema ?? []).map(c => c.name);
  const dtype = Object.fromEntries((d.schema ?? []).map(c => [c.name, c.dtype]));
  const cols: string[] = ['nulls', 'n_unique', 'min', 'mean', 'max', 'std'];
  return (
    <div className="nbt-dataset">
      <div className="nbt-dataset-title">
        <b>{d.name}</b> <span className="nbt-chip-static">{d.role}</span>{' '}
        <span className="nbt-hint">
          {d.n_rows} rows × {d.n_columns} columns · <code>{d.dataset_id}</code>
        </span>
      </div>
      <div className="nbt-table-scroll">
        <table className="nbt-table" aria-label={`Statistics of ${d.name}`}>
          <thead>
            <tr>
              <th scope="col">column</th>
              <th scope="col">type</th>
              {cols.map(c => <th key={c} scope="col">{c}</th>)}
              <th scope="col">distribution</th>
            </tr>
          </thead>
          <tbody>
            {names.map(name => {
              const s = (stats[name] ?? {}) as { [k: string]: Value };
              return (
                <tr key={name}>
                  <th scope="row">{name}</th>
                  <td>{dtype[name]}</td>
                  {cols.map(c => <td key={c} className="nbt-num">{formatValue(s[c])}</td>)}
                  <td><Histogram stats={s} /></td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function Histogram(props: { stats: { [k: string]: Value } }): JSX.Element | null {
  const h = props.stats.histogram as { counts?: number[] } | undefined;
  const top = props.stats.top as { [k: string]: Value }[] | { [k: string]: number } | undefined;
  const counts = h?.counts ?? (top && !Array.isArray(top) ? Object.values(top) as number[] : null);
  if (!counts || !counts.length) {
    return null;
  }
  const max = Math.max(...counts) || 1;
  const w = 80 / counts.length;
  return (
    <svg className="nbt-histogram" width={80} height={18} role="img" aria-label="histogram">
      {counts.map((c, i) => (
        <rect key={i} x={i * w} width={Math.max(w - 1, 1)} y={18 - (c / max) * 18} height={(c / max) * 18} />
      ))}
    </svg>
  );
}

function LineageView(props: { lineage: ILineage; openRun: (runId: string) => void }): JSX.Element {
  const { lineage } = props;
  const label = Object.fromEntries(lineage.nodes.map(n => [n.id, n]));
  if (!lineage.edges.length) {
    return <div className="nbt-empty">no lineage recorded</div>;
  }
  const node = (id: string) => {
    const n = label[id];
    const text = `${n?.kind ?? ''} ${n?.label ?? id}`;
    return n?.kind === 'run' && id !== lineage.root ? (
      <a href="#" onClick={e => { e.preventDefault(); props.openRun(id); }}>{text}</a>
    ) : (
      <span className={id === lineage.root ? 'nbt-lineage-root' : undefined}>{text}</span>
    );
  };
  return (
    <table className="nbt-table" aria-label="Lineage">
      <thead>
        <tr><th scope="col">from</th><th scope="col">relation</th><th scope="col">to</th></tr>
      </thead>
      <tbody>
        {lineage.edges.map((e, i) => (
          <tr key={i}>
            <td>{node(e.src)}</td>
            <td className="nbt-hint">{e.relation} →</td>
            <td>{node(e.dst)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
