/** Runs or branches side by side: overlaid curves, metrics, params diff, data, code, production. */
import * as React from 'react';

import { Params } from '../request';
import { IComparison, Value } from '../tokens';
import { LineChart } from './chart';
import { DataTable, ErrorBox, Loading, Section } from './common';
import { CompareMedia } from './media';
import { useApi } from './useapi';

export function CompareView(props: {
  what: 'runs' | 'branches';
  names: string[];
  metric: string;
  storeParams: Params;
}): JSX.Element {
  const params: Params = {
    ...props.storeParams,
    [props.what]: props.names.join(','),
    metric: props.metric || undefined,
    latency: props.what === 'branches'
  };
  const { data, error } = useApi<IComparison>('compare', params);
  const title = props.what === 'branches' ? `Branches ${props.names.join(' vs ')}` : `Compare ${props.names.length} runs`;
  if (!data) {
    return (
      <div className="nbt-view" aria-label={title}>
        <h2>{title}</h2>
        {error ? <ErrorBox message={error.message} /> : <Loading what="the comparison (it measures model latency)" />}
      </div>
    );
  }
  const differs = data.params.columns.indexOf('differs');
  const [labelAt, idAt] = ['label', 'run_id'].map(c => data.runs.columns.indexOf(c));
  const compared = data.runs.rows.map(r => ({ label: String(r[labelAt]), runId: String(r[idAt]) }));
  const paramsChanged = data.params.rows.filter(r => r[differs] === true).length;
  return (
    <div className="nbt-view" aria-label={title}>
      <header className="nbt-view-header">
        <h2>{title}</h2>
        <div className="nbt-meta">
          {props.what === 'branches'
            ? `the best run of each branch${data.metric ? ` by ${data.metric}` : ' (newest finished run)'}`
            : 'runs chosen in the sidebar'}
          ; differences are to <b>{data.labels[0]}</b>
        </div>
      </header>
      <Section title="Runs">
        <DataTable table={data.runs} label="Compared runs" />
      </Section>
      {Object.keys(data.curves).length > 0 && (
        <Section title="Metric curves">
          <div className="nbt-charts">
            {Object.entries(data.curves).map(([key, byLabel]) => (
              <LineChart
                key={key}
                title={key}
                xLabel="step"
                series={data.labels.filter(l => byLabel[l]).map(l => ({ label: l, points: byLabel[l] }))}
              />
            ))}
          </div>
        </Section>
      )}
      <CompareMedia runs={compared} media={data.media} storeParams={props.storeParams} />
      <Section title="Metrics">
        <DataTable table={data.metrics} label="Metrics" />
      </Section>
      <Section title={`Params (${paramsChanged} differ, highlighted)`}>
        <DataTable table={data.params} label="Params diff" hide={['differs']}
          highlight={(row: Value[]) => row[differs] === true} />
      </Section>
      <Section title="Data sets">
        <DataTable table={data.data} label="Data sets" />
        {data.data_changes.rows.length > 0 && (
          <DataTable table={data.data_changes} label="How the data differs" />
        )}
      </Section>
      <Section title="Code">
        {data.code_notes.map((n, i) => <div key={i} className="nbt-hint">{n}</div>)}
        <DataTable table={data.code} label="Changed files" empty="no code change between the snapshots" />
      </Section>
      <Section title="Production (model size and predict latency)">
        <DataTable table={data.production} label="Production" />
      </Section>
      <Section title="Packages that differ">
        <DataTable table={data.environment} label="Packages that differ" empty="same environment" />
      </Section>
    </div>
  );
}
