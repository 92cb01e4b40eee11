/**
 * The sidebar's state: the store, the experiment tree, sweeps, and the runs table as pages
 * fetched on demand (the table shows a window of them). It polls while the sidebar is
 * visible, backs off when the server fails, and stops while the panel or the tab is hidden.
 */
import { Poll } from '@lumino/polling';
import { ISignal, Signal } from '@lumino/signaling';

import { ApiError, Params, requestAPI } from './request';
import {
  DEFAULT_SETTINGS,
  IExperimentNode,
  IRunRow,
  IRunsPage,
  ISettings,
  IStoreInfo,
  ISweepSummary
} from './tokens';

export const PAGE_SIZE = 200;
/** How many metrics are columns until the user picks columns. */
export const KEY_METRICS = 3;
/** Children listed under one parent (the server's largest page). */
export const MAX_CHILDREN = 1000;

export interface IRunsQuery {
  where: string;
  orderBy: string;
  experiment: string;
  /** The columns the user picked; null: the key metrics of the runs shown. */
  columns: string[] | null;
}

/** A line of the runs table: a run (undefined while its page loads) and how deep it is. */
export interface ILine {
  run: IRunRow | undefined;
  depth: 0 | 1;
  /** The run's position among the top-level runs (depth 0 only). */
  index: number;
}

/** A parent whose children are listed under it. */
interface IExpanded {
  index: number;
  count: number;
  rows: IRunRow[] | null;
}

export class ExperimentsModel {
  constructor(settings: ISettings = DEFAULT_SETTINGS) {
    this._settings = settings;
    this._query = { where: '', orderBy: '', experiment: '', columns: null };
    this._poll = new Poll({
      factory: () => this.refresh(),
      frequency: { interval: settings.refreshInterval * 1000, backoff: true, max: 60 * 1000 },
      name: 'nbtrail:experiments',
      standby: () => (this._visible ? 'when-hidden' : true)
    });
  }

  /** Emitted whenever anything shown changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get settings(): ISettings {
    return this._settings;
  }
  get store(): IStoreInfo | null {
    return this._store;
  }
  get tree(): IExperimentNode[] {
    return this._tree;
  }
  get sweeps(): ISweepSummary[] {
    return this._sweeps;
  }
  get query(): IRunsQuery {
    return this._query;
  }
  get total(): number {
    return this._total;
  }
  /** The columns shown: the user's, or the default metric and the key metrics. */
  get columns(): string[] {
    return this._query.columns ?? this.autoColumns(this._keyMetrics);
  }
  /** Lines of the table: the top-level runs and the children of the expanded ones. */
  get lineCount(): number {
    let n = this._total;
    this._expanded.forEach(e => (n += e.count));
    return n;
  }
  get keys(): IRunsPage['keys'] {
    return this._keys;
  }
  /** Why the store cannot be shown (no store yet, server error): shown instead of the table. */
  get error(): ApiError | null {
    return this._error;
  }
  /** Why the filter or ordering was refused: shown under the filter box. */
  get queryError(): string | null {
    return this._queryError;
  }
  get loading(): boolean {
    return this._loading;
  }
  get selected(): ReadonlyMap<string, IRunRow> {
    return this._selected;
  }
  /** Branch names with runs, newest activity first. */
  get branches(): string[] {
    const seen = new Set<string>();
    for (const node of this._tree) {
      for (const b of node.branches) {
        if (b.branch) {
          seen.add(b.branch);
        }
      }
    }
    return [...seen];
  }

  /** The row at ``index``; undefined while its page loads (the load starts here). */
  rowAt(index: number): IRunRow | undefined {
    const page = Math.floor(index / PAGE_SIZE);
    const rows = this._pages.get(page);
    if (!rows) {
      void this.loadPage(page);
      return undefined;
    }
    return rows[index - page * PAGE_SIZE];
  }

  /** The line at ``line``: a top-level run or, under an expanded one, a child. */
  lineAt(line: number): ILine {
    let shift = 0;
    for (const e of this.expandedInOrder()) {
      const at = e.index + shift; // the parent's line
      if (line <= at) {
        break;
      }
      if (line <= at + e.count) {
        return { run: e.rows?.[line - at - 1], depth: 1, index: e.index };
      }
      shift += e.count;
    }
    return { run: this.rowAt(line - shift), depth: 0, index: line - shift };
  }

  isExpanded(runId: string): boolean {
    return this._expanded.has(runId);
  }

  /** List the children of the run at top-level ``index`` under it, or fold them away. */
  toggleExpanded(run: IRunRow, index: number): void {
    if (this._expanded.delete(run.run_id)) {
      this._changed.emit();
      return;
    }
    this._expanded.set(run.run_id, { index, count: Math.min(run.children, MAX_CHILDREN), rows: null });
    this._changed.emit();
    void this.loadChildren(run.run_id).finally(() => this._changed.emit());
  }

  /** Which lines the table shows; the next refresh reloads their pages. */
  setVisibleRange(first: number, last: number): void {
    this._visible_pages = new Set();
    const top = (line: number) => this.lineAt(line).index;
    for (let p = Math.floor(top(first) / PAGE_SIZE); p <= Math.floor(top(last) / PAGE_SIZE); p++) {
      this._visible_pages.add(p);
    }
  }

  setVisible(visible: boolean): void {
    this._visible = visible;
    if (visible) {
      void this._poll.refresh();
    }
  }

  updateSettings(settings: ISettings): void {
    const storeChanged = settings.storePath !== this._settings.storePath;
    const metricChanged = settings.defaultMetric !== this._settings.defaultMetric;
    this._settings = settings;
    this._poll.frequency = {
      interval: settings.refreshInterval * 1000,
      backoff: true,
      max: 60 * 1000
    };
    if (storeChanged || metricChanged) {
      this.resetRuns();
      void this._poll.refresh();
    }
  }

  setQuery(change: Partial<IRunsQuery>): void {
    this._query = { ...this._query, ...change };
    this._selected.clear();
    this.resetRuns();
    void this.loadPage(0);
  }

  toggleSelected(run: IRunRow): void {
    if (this._selected.has(run.run_id)) {
      this._selected.delete(run.run_id);
    } else {
      this._selected.set(run.run_id, run);
    }
    this._changed.emit();
  }

  clearSelection(): void {
    this._selected.clear();
    this._changed.emit();
  }

  /** Arguments every call carries: the store chosen in the settings, if any. */
  storeParams(): Params {
    return { store: this._settings.storePath || undefined };
  }

  /** Reload everything shown now (the poll calls this; so does the refresh button). */
  async refresh(): Promise<void> {
    this._loading = true;
    this._changed.emit();
    try {
      this._store = await requestAPI<IStoreInfo>('store', this.storeParams());
      const [tree, sweeps] = await Promise.all([
        requestAPI<IExperimentNode[]>('experiments', this.storeParams()),
        requestAPI<ISweepSummary[]>('sweeps', this.storeParams())
      ]);
      this._tree = tree;
      this._sweeps = sweeps;
      const pages = this._visible_pages.size ? [...this._visible_pages] : [0];
      const generation = this._generation;
      const loaded = await Promise.all(pages.map(p => this.fetchPage(p)));
      if (generation === this._generation) {
        this._pages.clear();
        loaded.forEach((rows, i) => rows && this._pages.set(pages[i], rows));
        this.relocateExpanded();
        await Promise.all([...this._expanded.keys()].map(id => this.loadChildren(id)));
      }
      this._error = null;
    } catch (error) {
      this._error = error instanceof ApiError ? error : new ApiError(String(error), 0);
      this._loading = false;
      this._changed.emit();
      // A missing store is a normal state: keep polling at the usual pace until it appears.
      if (!this._error.noStore) {
        throw error;
      }
      return;
    }
    this._loading = false;
    this._changed.emit();
  }

  /** Refresh now (and restart the poll's backoff). */
  refreshNow(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    this._poll.dispose();
    Signal.clearData(this);
  }

  /** The default metric (from the settings) first, then the key metrics. */
  private autoColumns(keyMetrics: string[]): string[] {
    const first = this._settings.defaultMetric ? [`metrics.${this._settings.defaultMetric}`] : [];
    return [...new Set([...first, ...keyMetrics])].slice(0, KEY_METRICS);
  }

  private expandedInOrder(): IExpanded[] {
    return [...this._expanded.values()].sort((a, b) => a.index - b.index);
  }

  /** After a reload the parents may have moved (a newer run above them) or gone. */
  private relocateExpanded(): void {
    const where = new Map<string, [number, IRunRow]>();
    this._pages.forEach((rows, page) =>
      rows.forEach((r, i) => where.set(r.run_id, [page * PAGE_SIZE + i, r]))
    );
    for (const [id, e] of [...this._expanded]) {
      const found = where.get(id);
      if (!found || !found[1].children) {
        this._expanded.delete(id);
      } else {
        e.index = found[0];
        e.count = Math.min(found[1].children, MAX_CHILDREN);
      }
    }
  }

  /** The runs query as the server takes it: the store, the filter and the columns. */
  private runsParams(): Params {
    const q = this._query;
    return {
      ...this.storeParams(),
      where: q.where,
      order_by: q.orderBy,
      experiment: q.experiment,
      columns: this.columns.join(',')
    };
  }

  private async loadChildren(parentId: string): Promise<void> {
    const generation = this._generation;
    try {
      const result = await requestAPI<IRunsPage>('runs', {
        ...this.runsParams(),
        parent: parentId,
        limit: MAX_CHILDREN
      });
      const e = this._expanded.get(parentId);
      if (e && generation === this._generation) {
        e.rows = result.runs;
        e.count = result.runs.length;
      }
    } catch (error) {
      if (generation === this._generation) {
        this._error = error instanceof ApiError ? error : new ApiError(String(error), 0);
      }
    }
  }

  private resetRuns(): void {
    this._generation++;
    this._expanded.clear();
    this._pages.clear();
    this._loadingPages.clear();
    this._queryError = null;
    this._changed.emit();
  }

  private async loadPage(page: number): Promise<void> {
    if (this._loadingPages.has(page)) {
      return;
    }
    this._loadingPages.add(page);
    const generation = this._generation;
    try {
      const rows = await this.fetchPage(page);
      if (generation === this._generation && rows) {
        this._pages.set(page, rows);
      }
    } catch (error) {
      if (generation === this._generation) {
        this._error = error instanceof ApiError ? error : new ApiError(String(error), 0);
      }
    } finally {
      this._loadingPages.delete(page);
      this._changed.emit();
    }
  }

  /** One page of runs; null when the query was refused (the message is kept). */
  private async fetchPage(page: number): Promise<IRunRow[] | null> {
    const q = this._query;
    try {
      const result = await requestAPI<IRunsPage>('runs', {
        ...this.runsParams(),
        nest: true,
        // Without chosen columns, the first page tells which metrics most runs have.
        key_metrics: q.columns === null && page === 0 ? KEY_METRICS : undefined,
        limit: PAGE_SIZE,
        offset: page * PAGE_SIZE
      });
      if (q.columns === null && page === 0) {
        this._keyMetrics = result.key_metrics;
      }
      this._total = result.total;
      this._keys = result.keys;
      this._queryError = null;
      this._error = null;
      return result.runs;
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) {
        this._queryError = error.message;
        this._total = 0;
        return [];
      }
      throw error;
    }
  }

  private _settings: ISettings;
  private _query: IRunsQuery;
  private _poll: Poll;
  private _visible = false;
  private _store: IStoreInfo | null = null;
  private _tree: IExperimentNode[] = [];
  private _sweeps: ISweepSummary[] = [];
  private _pages = new Map<number, IRunRow[]>();
  private _loadingPages = new Set<number>();
  private _visible_pages = new Set<number>([0]);
  private _generation = 0;
  private _total = 0;
  private _keys: IRunsPage['keys'] = { metrics: [], params: [], tags: [] };
  private _error: ApiError | null = null;
  private _queryError: string | null = null;
  private _loading = true; // until the first answer: no "No run matches" flash
  private _selected = new Map<string, IRunRow>();
  private _expanded = new Map<string, IExpanded>();
  private _keyMetrics: string[] = [];
  private _changed = new Signal<this, void>(this);
}
