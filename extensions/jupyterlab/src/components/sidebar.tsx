/** The "Experiments" sidebar: experiment/branch tree, sweeps, filter, and the runs table. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget, UseSignal } from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { formatDuration, formatShortTime, formatTime, formatValue, quoteFilter } from '../format';
import { ExperimentsModel } from '../model';
import { CommandIDs, IRunRow } from '../tokens';
import { ErrorBox, Notice } from './common';
import { PackageAction } from './package';

const ROW_HEIGHT = 26;
const OVERSCAN = 10;

export class ExperimentsPanel extends ReactWidget {
  constructor(
    readonly model: ExperimentsModel,
    private readonly commands: CommandRegistry
  ) {
    super();
    this.addClass('nbt-sidebar');
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.model.setVisible(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this.model.setVisible(false);
  }

  render(): JSX.Element {
    return (
      <UseSignal signal={this.model.changed}>
        {() => <Sidebar model={this.model} commands={this.commands} />}
      </UseSignal>
    );
  }
}

function Sidebar(props: { model: ExperimentsModel; commands: CommandRegistry }): JSX.Element {
  const { model, commands } = props;
  const error = model.error;
  return (
    <div className="nbt-sidebar-body">
      <header className="nbt-header">
        <h2>Experiments</h2>
        <button
          className="nbt-button nbt-icon-button"
          aria-label="Refresh"
          title="Refresh now"
          onClick={() => void model.refreshNow()}
        >
          ↻
        </button>
      </header>
      {model.store && (
        <div className="nbt-store" title={model.store.location}>
          store: {model.store.location}
        </div>
      )}
      {error && error.noStore && (
        <Notice>
          <strong>No runs yet.</strong> {error.message}
          <pre>{'import nbtrail as nt\nwith nt.run(name="first") as run:\n    run.log_metric("acc", 0.9)'}</pre>
        </Notice>
      )}
      {error && !error.noStore && <ErrorBox message={error.message} />}
      {!(error && error.noStore) && (
        <>
          <Tree model={model} />
          <Sweeps model={model} commands={commands} />
          <FilterBar model={model} />
          <ColumnPicker model={model} />
          <RunsTable model={model} commands={commands} />
          <Actions model={model} commands={commands} />
        </>
      )}
    </div>
  );
}

function Tree(props: { model: ExperimentsModel }): JSX.Element {
  const { model } = props;
  const q = model.query;
  const branchOf = /^branch = '((?:[^']|'')*)'$/.exec(q.where);
  const activeBranch = branchOf ? branchOf[1].replace(/''/g, "'") : null;
  return (
    <nav className="nbt-tree" aria-label="Experiments and branches">
      <ul role="tree">
        <li role="treeitem" aria-selected={!q.experiment && !activeBranch}>
          <button
            className="nbt-tree-item"
            onClick={() => model.setQuery({ experiment: '', where: '' })}
          >
            All runs
          </button>
        </li>
        {model.tree.map(node => (
          <li key={node.experiment} role="treeitem" aria-selected={q.experiment === node.experiment}
            aria-expanded={true}>
            <button
              className="nbt-tree-item"
              title={`experiment ${node.experiment}`}
              onClick={() => model.setQuery({ experiment: node.experiment, where: '' })}
            >
              {node.experiment}
              <span className="nbt-count">{node.runs}</span>
              {node.running > 0 && <span className="nbt-live">{node.running} running</span>}
            </button>
            <ul role="group">
              {node.branches
                .filter(b => b.branch && (node.branches.length > 1 || b.branch !== node.experiment))
                .map(b => (
                  <li key={b.branch!} role="treeitem" aria-selected={activeBranch === b.branch}>
                    <button
                      className="nbt-tree-item nbt-tree-branch"
                      title={`git branch ${b.branch}`}
                      onClick={() =>
                        model.setQuery({ experiment: node.experiment, where: `branch = ${quoteFilter(b.branch!)}` })
                      }
                    >
                      ⎇ {b.branch}
                      <span className="nbt-count">{b.runs}</span>
                    </button>
                  </li>
                ))}
            </ul>
          </li>
        ))}
      </ul>
    </nav>
  );
}

/** The sweeps: a pane of its own, so a long experiment tree never pushes it out of sight. */
function Sweeps(props: { model: ExperimentsModel; commands: CommandRegistry }): JSX.Element | null {
  const { model } = props;
  if (!model.sweeps.length) {
    return null;
  }
  return (
    <section className="nbt-sweeps-pane" aria-labelledby="nbt-sweeps-title">
      <h3 className="nbt-subtitle" id="nbt-sweeps-title">Sweeps</h3>
      <ul className="nbt-sweeps" aria-label="Sweeps">
        {model.sweeps.map(s => (
          <li key={s.sweep_id}>
            <button
              className="nbt-tree-item"
              onClick={() =>
                void props.commands.execute(CommandIDs.openSweep, { sweepId: s.sweep_id, name: s.name })
              }
            >
              ◎ {s.name}
              <span className="nbt-count">{s.trials} trials</span>
              {s.running > 0 && <span className="nbt-live">live</span>}
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}

function FilterBar(props: { model: ExperimentsModel }): JSX.Element {
  const { model } = props;
  const [text, setText] = React.useState(model.query.where);
  React.useEffect(() => setText(model.query.where), [model.query.where]);
  return (
    <div className="nbt-filter">
      <input
        type="search"
        aria-label="Filter runs"
        placeholder="metrics.acc > 0.9 and params.C = '1'"
        value={text}
        onChange={e => setText(e.target.value)}
        onKeyDown={e => {
          if (e.key === 'Enter') {
            model.setQuery({ where: text.trim() });
          }
        }}
      />
      {model.queryError && (
        <div className="nbt-error nbt-inline-error" role="alert">
          {model.queryError}
        </div>
      )}
    </div>
  );
}

function ColumnPicker(props: { model: ExperimentsModel }): JSX.Element {
  const { model } = props;
  const columns = model.columns;
  const options = [
    ...model.keys.metrics.map(k => `metrics.${k}`),
    ...model.keys.params.map(k => `params.${k}`)
  ].filter(c => !columns.includes(c));
  return (
    <div className="nbt-columns">
      {columns.map(c => (
        <span key={c} className="nbt-chip" title={c}>
          {c.replace(/^metrics\./, '')}
          <button
            aria-label={`Remove column ${c}`}
            onClick={() => model.setQuery({ columns: columns.filter(x => x !== c) })}
          >
            ×
          </button>
        </span>
      ))}
      {options.length > 0 && (
        <select
          aria-label="Add column"
          value=""
          onChange={e => e.target.value && model.setQuery({ columns: [...columns, e.target.value] })}
        >
          <option value="">+ column</option>
          {options.map(o => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      )}
    </div>
  );
}

interface IColumn {
  title: string;
  field: string;
  width: string;
  cell: (run: IRunRow) => React.ReactNode;
}

function RunsTable(props: { model: ExperimentsModel; commands: CommandRegistry }): JSX.Element {
  const { model, commands } = props;
  const scroller = React.useRef<HTMLDivElement>(null);
  const outer = React.useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = React.useState(0);
  const [height, setHeight] = React.useState(400);
  const [width, setWidth] = React.useState(300);
  React.useEffect(() => {
    const el = scroller.current;
    const box = outer.current;
    if (!el || !box) {
      return;
    }
    const observer = new ResizeObserver(() => {
      setHeight(el.clientHeight);
      setWidth(box.clientWidth); // the panel's width: the rows may be wider and scroll
    });
    observer.observe(el);
    observer.observe(box);
    return () => observer.disconnect();
  }, []);
  const columns: IColumn[] = [
    { title: 'Name', field: 'name', width: 'minmax(80px, 1fr)', cell: r => r.name ?? r.run_id.slice(0, 10) },
    // A narrow sidebar keeps the chosen columns and drops the start (it is in the tooltip).
    ...(width < 190 + 62 * model.columns.length
      ? []
      : [{ title: 'Start', field: 'start_time', width: '48px', cell: (r: IRunRow) => formatShortTime(r.start_time) }]),
    ...model.columns.map(c => ({
      title: c.replace(/^(metrics|params|tags)\./, ''),
      field: c,
      width: '58px',
      cell: (r: IRunRow) => formatValue(r.values[c])
    }))
  ];
  const template = `18px 10px ${columns.map(c => c.width).join(' ')}`;
  const total = model.lineCount;
  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = Math.min(total - 1, Math.ceil((scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
  React.useEffect(() => model.setVisibleRange(first, Math.max(first, last)), [first, last]);
  const order = model.query.orderBy;
  const sortBy = (field: string) => {
    const next = order === `-${field}` ? field : `-${field}`;
    model.setQuery({ orderBy: next });
  };
  const rows: JSX.Element[] = [];
  for (let i = first; i <= last; i++) {
    const line = model.lineAt(i);
    const run = line.run;
    const top = i * ROW_HEIGHT;
    if (!run) {
      rows.push(
        <div key={`loading-${i}`} className="nbt-row nbt-row-loading" style={{ top, gridTemplateColumns: template }} role="row">
          <span role="gridcell" />
        </div>
      );
      continue;
    }
    const label = run.name ?? run.run_id.slice(0, 10);
    const selected = model.selected.has(run.run_id);
    const parent = line.depth === 0 && run.children > 0;
    const expanded = parent && model.isExpanded(run.run_id);
    rows.push(
      <div
        key={`${line.depth}-${run.run_id}`}
        role="row"
        aria-label={`run ${label}`}
        aria-selected={selected}
        aria-level={line.depth + 1}
        aria-expanded={parent ? expanded : undefined}
        className={`nbt-row${selected ? ' nbt-row-selected' : ''}${line.depth ? ' nbt-row-child' : ''}`}
        style={{ top, gridTemplateColumns: template }}
        title={
          run.error ??
          `${run.run_id} · ${run.experiment}${run.branch ? ' · ' + run.branch : ''} · ` +
            `started ${formatTime(run.start_time)}` +
            (run.duration !== null ? ` · took ${formatDuration(run.duration)}` : '')
        }
        onClick={() => void commands.execute(CommandIDs.openRun, { runId: run.run_id, name: label })}
      >
        <span role="gridcell" onClick={e => e.stopPropagation()}>
          <input
            type="checkbox"
            aria-label={`Select ${label}`}
            checked={selected}
            onChange={() => model.toggleSelected(run)}
          />
        </span>
        <span role="gridcell" className={`nbt-dot nbt-status-${run.status}`} title={run.status} aria-label={run.status} />
        {columns.map((c, j) => (
          <span key={c.field} role="gridcell" className={c.field.startsWith('metrics.') ? 'nbt-num' : undefined}>
            {j === 0 && parent && (
              <button
                className="nbt-toggle"
                aria-label={`${expanded ? 'Collapse' : 'Expand'} ${label}`}
                title={`${expanded ? 'Hide' : 'Show'} its ${run.children} child run${run.children === 1 ? '' : 's'}`}
                onClick={e => {
                  e.stopPropagation();
                  model.toggleExpanded(run, line.index);
                }}
              >
                {expanded ? '▾' : '▸'}
              </button>
            )}
            {c.cell(run)}
            {j === 0 && parent && <span className="nbt-count">{run.children}</span>}
          </span>
        ))}
      </div>
    );
  }
  return (
    <div className="nbt-runs" role="treegrid" aria-label="Runs" aria-rowcount={total} ref={outer}>
      <div className="nbt-row nbt-row-header" role="row" style={{ gridTemplateColumns: template }}>
        <span role="columnheader" />
        <span role="columnheader" title="status" />
        {columns.map(c => (
          <span key={c.field} role="columnheader" aria-sort={order === `-${c.field}` ? 'descending' : order === c.field ? 'ascending' : 'none'}>
            <button className="nbt-sort" onClick={() => sortBy(c.field)} title={`Sort by ${c.field}`}>
              {c.title}
              {order === `-${c.field}` ? ' ↓' : order === c.field ? ' ↑' : ''}
            </button>
          </span>
        ))}
      </div>
      <div className="nbt-runs-scroll" ref={scroller} onScroll={e => setScrollTop(e.currentTarget.scrollTop)}>
        {total === 0 && !model.loading ? (
          <div className="nbt-empty">{model.queryError ? 'The filter was refused.' : 'No run matches.'}</div>
        ) : (
          <div className="nbt-runs-body" style={{ height: total * ROW_HEIGHT }}>
            {rows}
          </div>
        )}
      </div>
      <div className="nbt-footer">
        {model.total} run{model.total === 1 ? '' : 's'}
        {model.loading ? ' · refreshing…' : ''}
      </div>
    </div>
  );
}

function Actions(props: { model: ExperimentsModel; commands: CommandRegistry }): JSX.Element {
  const { model, commands } = props;
  const branches = model.branches;
  const [a, setA] = React.useState('');
  const [b, setB] = React.useState('');
  const [metric, setMetric] = React.useState(model.settings.defaultMetric);
  const first = a || branches[0] || '';
  const second = b || branches.find(x => x !== first) || '';
  const selected = [...model.selected.values()];
  const names = selected.map(r => r.name ?? r.run_id.slice(0, 10));
  return (
    <div className="nbt-actions">
      <div className="nbt-action-row">
        <button
          className="nbt-button nbt-primary"
          disabled={selected.length < 2}
          onClick={() =>
            void commands.execute(CommandIDs.compareRuns, { runIds: selected.map(r => r.run_id), names })
          }
        >
          Compare selected ({selected.length})
        </button>
        {selected.length === 1 && selected[0].has_model && (
          <button className="nbt-button" onClick={() => openPackageDialog(model, selected[0].run_id, names[0])}>
            Package…
          </button>
        )}
        {selected.length > 0 && (
          <button className="nbt-button" onClick={() => model.clearSelection()}>
            Clear
          </button>
        )}
      </div>
      {branches.length >= 2 && (
        <div className="nbt-action-row">
          <select aria-label="First branch" value={first} onChange={e => setA(e.target.value)}>
            {branches.map(x => (
              <option key={x}>{x}</option>
            ))}
          </select>
          <span>vs</span>
          <select aria-label="Second branch" value={second} onChange={e => setB(e.target.value)}>
            {branches.map(x => (
              <option key={x}>{x}</option>
            ))}
          </select>
          <select aria-label="Best run by" value={metric} onChange={e => setMetric(e.target.value)}>
            <option value="">newest run</option>
            {model.keys.metrics.map(k => (
              <option key={k} value={k}>
                best {k}
              </option>
            ))}
          </select>
          <button
            className="nbt-button"
            disabled={!first || !second || first === second}
            onClick={() => void commands.execute(CommandIDs.compareBranches, { branches: [first, second], metric })}
          >
            Compare branches
          </button>
        </div>
      )}
    </div>
  );
}

/** The Package action of one run with a model, in a dialog over the sidebar. */
function openPackageDialog(model: ExperimentsModel, runId: string, name: string): void {
  const body = ReactWidget.create(
    <PackageAction ref_={runId} what={`run ${name}`} storeParams={model.storeParams()}
      buildImage={model.settings.buildImage} />
  );
  body.addClass('nbt-main');
  void showDialog({ title: `Package ${name}`, body, buttons: [Dialog.cancelButton({ label: 'Close' })] });
}
