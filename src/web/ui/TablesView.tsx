import { useEffect, useMemo } from 'preact/hooks'
import { t } from '../i18n.js'
import type { Session } from '../app/session.js'
import { TablesModel } from '../app/tables.js'

/** The shared tables as the routers hold them: for the network's maintainers. */
export function TablesView({ session }: { session: Session }) {
  const model = useMemo(() => new TablesModel(session.room), [session])
  useEffect(() => {
    model.start()
    return () => model.stop()
  }, [model])
  const selected = model.selected.value
  return (
    <section class="tables">
      <h1>{t('tables.title')}</h1>
      <p class="hint">{model.source === 'router' ? t('tables.router') : t('tables.page')}</p>
      <div class="split">
        <ul class="table-list">
          {model.tables.value.map((tb) => (
            <li key={tb.type}>
              <button type="button" class={tb.type === selected ? 'contact active' : 'contact'} data-table={tb.type} onClick={() => model.select(tb.type)}>
                <code>{tb.type}</code> <span class="count">{tb.size}</span>
              </button>
            </li>
          ))}
        </ul>
        <div class="table-body">
          {selected === undefined ? (
            <p class="empty">{t('tables.pick')}</p>
          ) : (
            <table>
              <caption>
                <code>{selected}</code> · {model.size.value > model.rows.value.length ? t('tables.shown', { n: model.size.value, shown: model.rows.value.length }) : t('tables.entries', { n: model.size.value })}
              </caption>
              <thead>
                <tr>
                  <th>{t('tables.key')}</th>
                  <th>{t('tables.author')}</th>
                  <th>{t('tables.ttl')}</th>
                  <th>{t('tables.data')}</th>
                </tr>
              </thead>
              <tbody>
                {model.rows.value.map((r) => (
                  <tr key={r.key} class={r.changed ? 'changed' : undefined}>
                    <td>
                      <code>{r.key}</code>
                    </td>
                    <td>{r.author ?? ''}</td>
                    <td>{r.ttl ?? ''}</td>
                    <td class="data">
                      <code>{r.data}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      </div>
    </section>
  )
}
