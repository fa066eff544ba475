import { useEffect, useState } from 'preact/hooks'
import type { FunctionComponent } from 'preact'
import { t } from '../i18n.js'
import type { Session } from '../app/session.js'

type MapComponent = FunctionComponent<{ session: Session }>
let loaded: MapComponent | undefined

/** The map and its graph library load only when the map is opened: most visits never pay for them. */
export function LazyMap({ session }: { session: Session }) {
  const [View, setView] = useState<MapComponent | undefined>(() => loaded)
  useEffect(() => {
    if (View) return
    void import('./MapView.js').then((m) => {
      loaded = m.MapView
      setView(() => m.MapView)
    })
  }, [])
  return View ? <View session={session} /> : <p class="status-line">{t('map.loading')}</p>
}
