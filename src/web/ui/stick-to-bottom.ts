import { useEffect, useLayoutEffect, useRef, type MutableRef } from 'preact/hooks'

/** How close to the end (in px) still counts as reading the latest lines. */
const NEAR_END_PX = 48

/**
 * Keeps a scrolling list at its last line while the person is there: when lines arrive, and when the list changes
 * size (a phone turned, a notice closed, the keyboard opened). Someone who scrolled up to read stays where they
 * are until they come back down, or until `jump` changes (a conversation opened, their own line sent).
 */
export function useStickToBottom<T extends HTMLElement>(lines: unknown, jump: unknown): MutableRef<T | null> {
  const ref = useRef<T>(null)
  const atEnd = useRef(true)
  /** The list's box and content heights and width when last seen: a scroll that comes with a change to them is the layout's, not the person's. */
  const shape = useRef('')
  const shapeOf = (el: HTMLElement) => `${el.clientWidth} ${el.clientHeight} ${el.scrollHeight}`
  useEffect(() => {
    const el = ref.current
    if (!el) return
    shape.current = shapeOf(el)
    const onScroll = () => {
      const now = shapeOf(el)
      if (now !== shape.current) return void (shape.current = now)
      atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight <= NEAR_END_PX
    }
    const resized = new ResizeObserver(() => {
      if (atEnd.current) el.scrollTop = el.scrollHeight
      shape.current = shapeOf(el)
    })
    el.addEventListener('scroll', onScroll, { passive: true })
    resized.observe(el)
    return () => {
      el.removeEventListener('scroll', onScroll)
      resized.disconnect()
    }
  }, [])
  useLayoutEffect(() => {
    atEnd.current = true
  }, [jump])
  useLayoutEffect(() => {
    const el = ref.current
    if (!el) return
    if (atEnd.current) el.scrollTop = el.scrollHeight
    shape.current = shapeOf(el)
  }, [lines, jump])
  return ref
}
