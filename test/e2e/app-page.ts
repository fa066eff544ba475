import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BrowserContext, Page } from 'playwright-core'

/** Where the browser tests leave what people would see: one screenshot per view and size. */
export const SCREENSHOTS = fileURLToPath(new URL('../../test-artifacts/screenshots/', import.meta.url))

export const DESKTOP = { width: 1280, height: 800 } as const
export const PHONE = { width: 390, height: 844 } as const

/** Opens the web app at `url`, as a person would, and enters with `name`. Resolves once the room is joined. */
export async function openApp(context: BrowserContext, url: string, name: string): Promise<Page> {
  return loadApp(context, url, name)
}

/** Opens the web app again in a browser that has been there: it enters with the name it kept. */
export async function reopenApp(context: BrowserContext, url: string): Promise<Page> {
  return loadApp(context, url)
}

async function loadApp(context: BrowserContext, url: string, name?: string): Promise<Page> {
  const page = await context.newPage()
  await page.setViewportSize(DESKTOP)
  const errors: string[] = []
  pageErrors.set(page, errors)
  page.on('pageerror', (e) => {
    errors.push(e.message)
    process.stderr.write(`app ${url} (${name ?? 'again'}): uncaught ${e.message}\n`)
  })
  // What the Content-Security-Policy refused counts as an error too: the app must need nothing it forbids.
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text())
  })
  await page.goto(url, { timeout: 15_000 })
  if (name !== undefined) {
    await page.fill('#name-input', name)
    await page.click('.name-form button[type=submit]')
  }
  await page.waitForFunction(() => (globalThis as { mallaSession?: unknown }).mallaSession !== undefined, undefined, { timeout: 30_000 })
  return page
}

const pageErrors = new WeakMap<Page, string[]>()

/** Uncaught errors the page has thrown so far. */
export function errorsOf(page: Page): readonly string[] {
  return pageErrors.get(page) ?? []
}

/** This page's peer id in the room. */
export function idOf(page: Page): Promise<string> {
  return page.evaluate(() => (globalThis as unknown as { mallaSession: { room: { id: string } } }).mallaSession.room.id)
}

export async function show(page: Page, view: string): Promise<void> {
  await page.click(`.tab[data-view=${view}]`)
  await page.waitForSelector(`main.view[data-view=${view}]`)
}

/** A screenshot of the page as it is, at desktop and phone size, named `<name>-desktop.png` and `<name>-phone.png`. */
export async function screenshots(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true })
  for (const [size, viewport] of [['desktop', DESKTOP], ['phone', PHONE]] as const) {
    await page.setViewportSize(viewport)
    await page.waitForTimeout(150)
    await page.screenshot({ path: join(SCREENSHOTS, `${name}-${size}.png`) })
  }
  await page.setViewportSize(DESKTOP)
}

/**
 * One picture of several screenshots side by side (`shots`: file names in SCREENSHOTS), bottom-aligned on the
 * app's background, drawn by a page of `context`: the README's picture of the app at desktop and phone size.
 */
export async function overview(context: BrowserContext, shots: readonly string[], out: string): Promise<void> {
  const images = await Promise.all(shots.map(async (s) => `data:image/png;base64,${(await readFile(join(SCREENSHOTS, s))).toString('base64')}`))
  const page = await context.newPage()
  try {
    await page.setViewportSize({ width: 1800, height: 900 })
    await page.setContent(
      `<body style="margin:0;background:#dfe7e4"><div id="o" style="display:inline-flex;align-items:flex-end;gap:28px;padding:28px">${images
        .map((src) => `<img src="${src}" style="border-radius:10px;box-shadow:0 4px 18px #0003">`)
        .join('')}</div></body>`,
    )
    await page.waitForFunction(() => [...document.images].every((i) => i.complete && i.naturalWidth > 0))
    await (await page.$('#o'))?.screenshot({ path: join(SCREENSHOTS, out) })
  } finally {
    await page.close()
  }
}
