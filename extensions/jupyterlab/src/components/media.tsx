/**
 * A run's figures, images, tables and texts (and several runs' side by side). Images load
 * one at a time, when shown: a series shows the step its slider is on. Stored HTML is
 * never rendered: a plotly figure shows its PNG, and its HTML is a download.
 */
import * as React from 'react';

import { formatBytes } from '../format';
import { apiUrl, Params } from '../request';
import { IMedia, ITablePreview, ITextPreview } from '../tokens';
import { DataTable, Section } from './common';

/** The URL of one stored artifact of a run. */
export function artifactUrl(runId: string, name: string, storeParams: Params): string {
  const path = name.split('/').map(encodeURIComponent).join('/');
  return apiUrl(`runs/${encodeURIComponent(runId)}/artifacts/${path}`, storeParams);
}

/** One thing to show: a single artifact, or every step of an image series. */
interface IGroup {
  key: string;
  view: IMedia['view'];
  items: IMedia[];
}

/** The media grouped as shown, in the server's order (by kind, series, step). */
function groups(media: IMedia[]): IGroup[] {
  const found = new Map<string, IGroup>();
  for (const item of media) {
    const key = item.step !== null ? `series:${item.series}` : `${item.view}:${item.name}`;
    const group = found.get(key);
    if (group) {
      group.items.push(item);
    } else {
      found.set(key, { key, view: item.view, items: [item] });
    }
  }
  return [...found.values()];
}

function title(group: IGroup): string {
  return group.items[0].step !== null ? group.items[0].series : group.items[0].name;
}

/** A run's media in four sections: images, tables, texts, downloads. */
export function RunMedia(props: { runId: string; media: IMedia[]; storeParams: Params }): JSX.Element | null {
  const all = groups(props.media);
  if (!all.length) {
    return null;
  }
  const of = (view: IMedia['view']) => all.filter(g => g.view === view);
  const cell = (group: IGroup) => (
    <MediaCell key={group.key} group={group} runId={props.runId} storeParams={props.storeParams} />
  );
  return (
    <>
      {of('image').length > 0 && (
        <Section title="Figures and images" count={of('image').length}>
          <div className="nbt-media-grid">{of('image').map(cell)}</div>
        </Section>
      )}
      {of('table').length > 0 && <Section title="Tables" count={of('table').length}>{of('table').map(cell)}</Section>}
      {of('text').length > 0 && <Section title="Texts" count={of('text').length}>{of('text').map(cell)}</Section>}
      {of('file').length > 0 && (
        <Section title="Figure files" count={of('file').length}>
          {of('file').map(cell)}
        </Section>
      )}
    </>
  );
}

/** One group of one run: an image, a series with its slider, a table, a text or a download. */
function MediaCell(props: {
  group: IGroup;
  runId: string;
  storeParams: Params;
  step?: number;
  label?: string;
}): JSX.Element {
  const { group, runId, storeParams } = props;
  const name = title(group);
  const heading = props.label ?? name;
  const first = group.items[0];
  const download = (item: IMedia, text: string) => (
    <a href={artifactUrl(runId, item.name, storeParams)} download={item.name.split('/').pop()}>{text}</a>
  );
  switch (group.view) {
    case 'image':
      if (first.step === null) {
        return <MediaImage runId={runId} item={first} storeParams={storeParams} caption={heading} />;
      }
      return props.step !== undefined ? (
        <StepImage runId={runId} items={group.items} step={props.step} storeParams={storeParams} caption={heading} />
      ) : (
        <ImageSeries runId={runId} name={name} items={group.items} storeParams={storeParams} />
      );
    case 'table': {
      const preview = first.preview as ITablePreview;
      return (
        <div className="nbt-media-table">
          <div className="nbt-dataset-title">
            <b>{heading}</b>{' '}
            <span className="nbt-hint">
              {preview.n_rows} rows × {preview.columns.length} columns
              {preview.n_rows > preview.rows.length && ` · the first ${preview.rows.length}`} ·{' '}
              {download(first, 'Parquet')}
            </span>
          </div>
          <DataTable table={preview} label={`Table ${name}`} empty="(no rows)" />
        </div>
      );
    }
    case 'text': {
      const preview = first.preview as ITextPreview;
      return (
        <div className="nbt-media-text">
          <div className="nbt-dataset-title">
            <b>{heading}</b> <span className="nbt-hint">{formatBytes(first.size_bytes)} · {download(first, 'download')}</span>
          </div>
          <pre aria-label={`Text ${name}`}>{preview.text}</pre>
          {preview.truncated && <div className="nbt-hint">… the rest is in the download</div>}
        </div>
      );
    }
    default:
      return (
        <div className="nbt-media-file">
          {download(first, heading)}{' '}
          <span className="nbt-hint">
            {first.media_type ?? 'file'} · {formatBytes(first.size_bytes)}
            {first.media_type === 'text/html' && ' · interactive figure: open the download in a browser'}
          </span>
        </div>
      );
  }
}

function MediaImage(props: { runId: string; item: IMedia; storeParams: Params; caption: string }): JSX.Element {
  return (
    <figure className="nbt-media-image">
      <img
        src={artifactUrl(props.runId, props.item.name, props.storeParams)}
        alt={props.item.step === null ? props.item.name : `${props.item.series} step ${props.item.step}`}
        loading="lazy"
      />
      <figcaption>{props.caption}</figcaption>
    </figure>
  );
}

/** The image of a series at ``step``, or a note that the run has none there. */
function StepImage(props: { runId: string; items: IMedia[]; step: number; storeParams: Params; caption: string }): JSX.Element {
  const item = props.items.find(i => i.step === props.step);
  return item ? (
    <MediaImage runId={props.runId} item={item} storeParams={props.storeParams} caption={props.caption} />
  ) : (
    <figure className="nbt-media-image">
      <div className="nbt-empty">no image at step {props.step}</div>
      <figcaption>{props.caption}</figcaption>
    </figure>
  );
}

/** A slider over the steps of a series (the last step first); only the shown image loads. */
function StepSlider(props: { name: string; steps: number[]; step: number; onStep: (step: number) => void }): JSX.Element {
  const index = Math.max(0, props.steps.indexOf(props.step));
  return (
    <label className="nbt-media-slider">
      <input
        type="range"
        min={0}
        max={props.steps.length - 1}
        value={index}
        aria-label={`Step of ${props.name}`}
        aria-valuetext={`step ${props.step}`}
        onChange={e => props.onStep(props.steps[Number(e.target.value)])}
      />
      <span>
        step {props.step} <span className="nbt-hint">({index + 1} of {props.steps.length})</span>
      </span>
    </label>
  );
}

function ImageSeries(props: { runId: string; name: string; items: IMedia[]; storeParams: Params }): JSX.Element {
  const steps = props.items.map(i => i.step as number);
  const [step, setStep] = React.useState(steps[steps.length - 1]);
  return (
    <div className="nbt-media-series">
      <StepImage runId={props.runId} items={props.items} step={step} storeParams={props.storeParams} caption={props.name} />
      <StepSlider name={props.name} steps={steps} step={step} onStep={setStep} />
    </div>
  );
}

/** Several runs' media: each group once, the runs side by side; a series shares one slider. */
export function CompareMedia(props: {
  runs: { runId: string; label: string }[];
  media: { [runId: string]: IMedia[] };
  storeParams: Params;
}): JSX.Element | null {
  const byRun = props.runs.map(r => new Map(groups(props.media[r.runId] ?? []).map(g => [g.key, g])));
  const keys: string[] = [];
  for (const found of byRun) {
    for (const key of found.keys()) {
      if (!keys.includes(key)) {
        keys.push(key);
      }
    }
  }
  if (!keys.length) {
    return null;
  }
  return (
    <Section title="Figures, images, tables and texts" count={keys.length}>
      {keys.map(key => (
        <CompareGroup key={key} groupKey={key} runs={props.runs} byRun={byRun} storeParams={props.storeParams} />
      ))}
    </Section>
  );
}

function CompareGroup(props: {
  groupKey: string;
  runs: { runId: string; label: string }[];
  byRun: Map<string, IGroup>[];
  storeParams: Params;
}): JSX.Element {
  const present = props.byRun.map(found => found.get(props.groupKey));
  const some = present.find(g => g !== undefined) as IGroup;
  const isSeries = some.items[0].step !== null;
  const steps = isSeries
    ? [...new Set(present.flatMap(g => (g ? g.items.map(i => i.step as number) : [])))].sort((a, b) => a - b)
    : [];
  const [step, setStep] = React.useState(steps[steps.length - 1]);
  return (
    <div className="nbt-media-compare" aria-label={`Compare ${title(some)}`}>
      <h4>{title(some)}</h4>
      {isSeries && <StepSlider name={title(some)} steps={steps} step={step} onStep={setStep} />}
      <div className="nbt-media-side-by-side">
        {props.runs.map((run, i) => {
          const group = present[i];
          return group ? (
            <MediaCell key={run.runId} group={group} runId={run.runId} storeParams={props.storeParams}
              step={isSeries ? step : undefined} label={run.label} />
          ) : (
            <div key={run.runId} className="nbt-empty">{run.label}: not logged</div>
          );
        })}
      </div>
    </div>
  );
}
