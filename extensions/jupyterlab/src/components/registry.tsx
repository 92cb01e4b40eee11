/**
 * The "Model registry" sidebar: promotion requests waiting for a decision (their checks,
 * Approve and Reject), the registered models with their versions and aliases, the serving
 * packages' live view (``serving.tsx``); and the Register action of a run's view.
 */
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { formatTime, formatValue } from '../format';
import { ExperimentsModel } from '../model';
import { ApiError, Params, postAPI } from '../request';
import { IPromotionRequest, IRegisteredModel, IRegistry, IRegistryVersion, Value } from '../tokens';
import { ErrorBox, Loading, Notice, Section, StatusBadge } from './common';
import { Serving } from './serving';
import { useApi } from './useapi';

/** The sidebar panel; its view is mounted only while shown, so a hidden one polls nothing. */
export class RegistryPanel extends ReactWidget {
  constructor(
    private readonly model: ExperimentsModel,
    private readonly openRun: (runId: string) => void
  ) {
    super();
    this.addClass('nbt-sidebar');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.update();
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.update();
  }

  render(): JSX.Element | null {
    if (!this.isVisible) {
      return null;
    }
    // The store and the refresh interval are the sidebar's settings, kept by its model.
    return (
      <UseSignal signal={this.model.changed}>
        {() => (
          <Registry storeParams={this.model.storeParams()}
            refreshInterval={this.model.settings.refreshInterval} openRun={this.openRun} />
        )}
      </UseSignal>
    );
  }
}

function Registry(props: {
  storeParams: Params;
  refreshInterval: number;
  openRun: (runId: string) => void;
}): JSX.Element {
  const { data, error, reload } = useApi<IRegistry>('registry', props.storeParams, () => true,
    props.refreshInterval);
  return (
    <div className="nbt-sidebar-body nbt-registry">
      <header className="nbt-header">
        <h2>Model registry</h2>
        <button className="nbt-button nbt-icon-button" aria-label="Refresh registry" title="Refresh now"
          onClick={reload}>
          ↻
        </button>
      </header>
      {error?.noStore && <Notice><strong>No store yet.</strong> {error.message}</Notice>}
      {error && !error.noStore && (
        <ErrorBox title={data ? 'Refresh failed' : undefined} message={error.message} />
      )}
      {!data && !error && <Loading what="the registry" />}
      {data && (
        <>
          <Requests requests={data.requests} storeParams={props.storeParams} onDecided={reload} />
          <Models models={data.models} openRun={props.openRun} />
          <Serving storeParams={props.storeParams} refreshInterval={props.refreshInterval}
            openRun={props.openRun} onPromoted={reload} />
        </>
      )}
    </div>
  );
}

/** A button's POST: busy while it runs, then the server's sentence if it was refused. */
function useAction(): {
  busy: boolean;
  error: string | null;
  run: (action: () => Promise<void>) => Promise<void>;
} {
  const [busy, setBusy] = React.useState(false);
  const [error, setError] = React.useState<string | null>(null);
  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run };
}

function Requests(props: {
  requests: IPromotionRequest[];
  storeParams: Params;
  onDecided: () => void;
}): JSX.Element {
  return (
    <Section title="Waiting for a decision" count={props.requests.length}>
      {props.requests.length ? (
        <ul className="nbt-requests" aria-label="Promotion requests">
          {props.requests.map(r => (
            <li key={r.request_id}>
              <RequestCard request={r} storeParams={props.storeParams} onDecided={props.onDecided} />
            </li>
          ))}
        </ul>
      ) : (
        <div className="nbt-empty">no promotion request is open</div>
      )}
    </Section>
  );
}

function RequestCard(props: {
  request: IPromotionRequest;
  storeParams: Params;
  onDecided: () => void;
}): JSX.Element {
  const r = props.request;
  const [note, setNote] = React.useState('');
  const { busy, error, run } = useAction();
  const decide = (verdict: 'approve' | 'reject') =>
    run(async () => {
      await postAPI(`registry/requests/${r.request_id}/${verdict}`, { note: note.trim() || null },
        props.storeParams);
      props.onDecided();
    });
  const id = `request #${r.request_id}`;
  return (
    <article className="nbt-request" aria-label={`Promotion ${id}: ${r.ref} to @${r.alias}`}>
      <div className="nbt-request-title">
        <b>{r.ref}</b> → <span className="nbt-chip-static">@{r.alias}</span> <StatusBadge status={r.status} />
      </div>
      <div className="nbt-hint">
        #{r.request_id} · by {r.requested_by} · {formatTime(r.requested_at)} · @{r.alias} is now{' '}
        {r.holder === null ? 'unset' : `${r.model}/${r.holder}`}
      </div>
      {r.note && <div className="nbt-request-note">{r.note}</div>}
      <ul className="nbt-checks" aria-label={`Checks of ${id}`}>
        {r.checks.map(c => (
          <li key={c.check} className={c.passed ? 'nbt-check-passed' : 'nbt-check-failed'}>
            <span aria-hidden="true">{c.passed ? '✓' : '✗'}</span> <b>{c.check}</b>{' '}
            {c.passed ? 'passed' : 'failed'}: {c.detail}
            <div className="nbt-hint">{joinValues(c.evidence)}</div>
          </li>
        ))}
        {!r.checks.length && (
          <li className="nbt-empty">
            {r.status === 'checking' ? 'the checks are running…' : "the alias's policy asks for no check"}
          </li>
        )}
      </ul>
      <div className="nbt-action-row">
        <input type="text" className="nbt-input" aria-label={`Note on ${id}`} placeholder="note (optional)"
          value={note} disabled={busy} onChange={e => setNote(e.target.value)} />
        <button className="nbt-button nbt-primary" disabled={busy || r.status !== 'pending'}
          title={r.status === 'pending' ? `Move @${r.alias} to ${r.ref}` : 'The checks have not finished'}
          onClick={() => void decide('approve')}>
          Approve
        </button>
        <button className="nbt-button" disabled={busy} onClick={() => void decide('reject')}>
          Reject
        </button>
      </div>
      {error && <div className="nbt-error nbt-inline-error" role="alert">{error}</div>}
    </article>
  );
}

function Models(props: { models: IRegisteredModel[]; openRun: (runId: string) => void }): JSX.Element {
  return (
    <Section title="Registered models" count={props.models.length}>
      {props.models.length ? (
        props.models.map(m => <ModelCard key={m.name} model={m} openRun={props.openRun} />)
      ) : (
        <div className="nbt-empty">
          No model is registered yet: register a run's model with its Register button, or with{' '}
          <code>nt.register(run, name=…)</code>.
        </div>
      )}
    </Section>
  );
}

function ModelCard(props: { model: IRegisteredModel; openRun: (runId: string) => void }): JSX.Element {
  const m = props.model;
  const aliases = Object.entries(m.aliases).sort(([a], [b]) => a.localeCompare(b));
  return (
    <div className="nbt-registered-model" role="group" aria-label={`Model ${m.name}`}>
      <div className="nbt-request-title">
        <b>{m.name}</b>
        {aliases.map(([alias, version]) => (
          <span key={alias} className="nbt-chip-static">@{alias} → {version}</span>
        ))}
      </div>
      {m.description && <div className="nbt-hint">{m.description}</div>}
      <div className="nbt-table-scroll">
        <table className="nbt-table" aria-label={`Versions of ${m.name}`}>
          <thead>
            <tr>
              <th scope="col">version</th>
              <th scope="col">run</th>
            </tr>
          </thead>
          <tbody>
            {[...m.versions].reverse().map(v => (
              <VersionRow key={v.version} version={v} openRun={props.openRun} />
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

function VersionRow(props: { version: IRegistryVersion; openRun: (runId: string) => void }): JSX.Element {
  const v = props.version;
  return (
    <tr title={`${v.ref} · model ${v.model_id} · registered ${formatTime(v.registered_at)}`}>
      <th scope="row">
        {v.version}{' '}
        {v.aliases.map(a => <span key={a} className="nbt-chip-static">@{a}</span>)}
      </th>
      <td>
        <a href="#" onClick={e => { e.preventDefault(); props.openRun(v.run_id); }}>
          {v.run_name ?? v.run_id.slice(0, 10)}
        </a>
        <div className="nbt-hint">
          {[`by ${v.registered_by}`, joinValues(v.metrics)].filter(Boolean).join(' · ')}
        </div>
      </td>
    </tr>
  );
}

/** A mapping as one line: `key value · key value`. */
function joinValues(values: { [key: string]: Value }): string {
  return Object.entries(values).map(([k, v]) => `${k} ${formatValue(v)}`).join(' · ');
}

/** The Register action of a run that logged a model: the next version of a named model. */
export function RegisterAction(props: { runId: string; modelName: string; storeParams: Params }): JSX.Element {
  const [name, setName] = React.useState(props.modelName);
  const [registered, setRegistered] = React.useState<Pick<IRegistryVersion, 'ref' | 'model_id'> | null>(null);
  const { busy, error, run } = useAction();
  const register = () =>
    run(async () => {
      setRegistered(null);
      setRegistered(await postAPI<Pick<IRegistryVersion, 'ref' | 'model_id'>>('registry/register',
        { run_id: props.runId, name: name.trim() }, props.storeParams));
    });
  return (
    <div className="nbt-register" aria-label="Register">
      <div className="nbt-action-row">
        <input type="text" className="nbt-input" aria-label="Registered model name" placeholder="model name"
          value={name} disabled={busy} onChange={e => setName(e.target.value)}
          onKeyDown={e => {
            if (e.key === 'Enter' && name.trim()) {
              void register();
            }
          }} />
        <button className="nbt-button" disabled={busy || !name.trim()} onClick={() => void register()}>
          Register
        </button>
        <span className="nbt-hint">as the next version of this model in the registry</span>
      </div>
      {registered && (
        <div className="nbt-success" role="status" aria-label="Register result">
          Registered <b>{registered.ref}</b> (model <code>{registered.model_id}</code>)
        </div>
      )}
      {error && <ErrorBox title="Registering failed" message={error} />}
    </div>
  );
}
