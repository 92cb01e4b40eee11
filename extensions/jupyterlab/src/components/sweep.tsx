/** A sweep: the value of each trial with the best so far, the best trial, the trials table. */
import * as React from 'react';

import { formatValue } from '../format';
import { Params } from '../request';
import { ISweep } from '../tokens';
import { LineChart } from './chart';
import { DataTable, ErrorBox, KeyValues, Loading, Section } from './common';
import { useApi } from './useapi';

export function SweepView(props: {
  sweepId: string;
  storeParams: Params;
  refreshInterval: number;
  openRun: (runId: string) => void;
}): JSX.Element {
  const { data, error } = useApi<ISweep>(
    `sweeps/${encodeURIComponent(props.sweepId)}`,
    props.storeParams,
    s => s.running > 0,
    props.refreshInterval
  );
  if (!data) {
    return error ? <ErrorBox message={error.message} /> : <Loading what="the sweep" />;
  }
  const cols = data.trials.columns;
  const at = (name: string) => cols.indexOf(name);
  const trialIx = at('trial');
  const stateIx = at('state');
  const valueCol = data.value_columns[0];
  const valueIx = valueCol ? at(valueCol) : -1;
  const maximize = data.directions[0] !== 'minimize';
  const complete = data.trials.rows.filter(r => r[stateIx] === 'complete' && r[valueIx] !== null);
  const points = complete.map(r => [r[trialIx] as number, r[valueIx] as number] as [number, number]);
  let best: number | null = null;
  const bestSoFar = points.map(([t, v]) => {
    best = best === null ? v : maximize ? Math.max(best, v) : Math.min(best, v);
    return [t, best] as [number, number];
  });
  return (
    <div className="nbt-view" aria-label={`Sweep ${data.name}`}>
      <header className="nbt-view-header">
        <h2>
          Sweep {data.name} {data.running > 0 && <span className="nbt-live">live</span>}
        </h2>
        <div className="nbt-meta">
          {data.trials.rows.length} trials · {data.complete} complete · {data.pruned} pruned · {data.failed} failed ·{' '}
          {data.directions.join(', ')}
        </div>
        {error && <ErrorBox title="Refresh failed" message={error.message} />}
      </header>
      <div className="nbt-columns-2">
        {valueIx >= 0 && (
          <LineChart
            title={`${valueCol.replace('metrics.', '')} by trial`}
            xLabel="trial"
            series={[
              { label: 'trial value', points, dots: true },
              { label: 'best so far', points: bestSoFar, dashed: true }
            ]}
          />
        )}
        <Section title="Best trial">
          {data.best ? (
            <>
              <KeyValues label="Best trial" values={{
                trial: data.best.trial, value: formatValue(data.best.value),
                ...Object.fromEntries(Object.entries(data.best.params).map(([k, v]) => [`params.${k}`, v]))
              }} />
              <button className="nbt-button" onClick={() => props.openRun(data.best!.run_id)}>
                Open the best trial's run
              </button>
            </>
          ) : (
            <div className="nbt-empty">
              {data.directions.length > 1 ? 'several objectives: no single best trial' : 'no complete trial yet'}
            </div>
          )}
        </Section>
      </div>
      <Section title="Trials" count={data.trials.rows.length}>
        <DataTable table={data.trials} label="Trials" hide={['run_id']}
          highlight={row => data.best !== null && row[trialIx] === data.best.trial} />
      </Section>
    </div>
  );
}
