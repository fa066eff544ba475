import { useState } from 'preact/hooks'
import { t } from '../i18n.js'

/** Asks for a display name before joining; also used to change it. */
export function NameForm({ onName, initial = '', compact = false }: { onName(name: string): void; initial?: string; compact?: boolean }) {
  const [value, setValue] = useState(initial)
  const clean = value.trim().slice(0, 64)
  return (
    <form
      class={compact ? 'name-form compact' : 'name-form card'}
      onSubmit={(e) => {
        e.preventDefault()
        if (clean !== '') onName(clean)
      }}
    >
      {compact ? null : <p class="tagline">{t('app.tagline')}</p>}
      <label for="name-input">{t('name.label')}</label>
      <div class="row">
        <input id="name-input" name="name" value={value} maxLength={64} autoComplete="nickname" placeholder={t('name.placeholder')} onInput={(e) => setValue(e.currentTarget.value)} required />
        <button type="submit" disabled={clean === ''}>
          {compact ? t('name.save') : t('name.join')}
        </button>
      </div>
      {compact ? null : <p class="hint">{t('name.hint')}</p>}
    </form>
  )
}
