import { useState } from 'preact/hooks'
import { t } from '../i18n.js'

/** The line at the bottom of a conversation: type, Enter or Send, and the field is empty again. */
export function Composer({ name, maxLength, placeholder, onSend }: { name: string; maxLength: number; placeholder: string; onSend(text: string): void }) {
  const [text, setText] = useState('')
  return (
    <form
      class="composer"
      onSubmit={(e) => {
        e.preventDefault()
        setText('')
        onSend(text)
      }}
    >
      <input name={name} value={text} maxLength={maxLength} placeholder={placeholder} onInput={(e) => setText(e.currentTarget.value)} autoComplete="off" />
      <button type="submit">{t('chat.send')}</button>
    </form>
  )
}
