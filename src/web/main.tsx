import { render } from 'preact'
import { lang } from './i18n.js'
import { App } from './ui/App.js'
import './styles.css'

document.documentElement.lang = lang.value
render(<App />, document.getElementById('app') as HTMLElement)
