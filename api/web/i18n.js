// Every label of the reviewer page, in Chinese and English: key -> {zh, en}.
// {name} is filled in by app.js. The object below is kept strict JSON (double quotes, no
// trailing commas, no comments inside) so that tests/test_web_static.py can read it and
// check that every key has both languages.
window.LW_I18N = {
  "app.tagline": {"zh": "直播证据检索", "en": "livestream evidence search"},
  "lang.label": {"zh": "界面语言", "en": "Language"},

  "auth.title": {"zh": "登录", "en": "Sign in"},
  "auth.key": {"zh": "API 密钥", "en": "API key"},
  "auth.signIn": {"zh": "登录", "en": "Sign in"},
  "auth.signOut": {"zh": "退出", "en": "Sign out"},
  "auth.hint": {
    "zh": "请输入管理员发给您的审核员（reviewer）密钥。密钥只保存在本浏览器中，点“退出”即删除。",
    "en": "Enter the reviewer key your administrator gave you. It is kept in this browser only; Sign out removes it."
  },
  "auth.checking": {"zh": "正在验证密钥…", "en": "Checking the key…"},
  "auth.signedIn": {"zh": "密钥 {prefix}…", "en": "Key {prefix}…"},
  "auth.signedOut": {"zh": "已退出，本浏览器不再保存密钥。", "en": "Signed out; the key is no longer kept in this browser."},

  "search.title": {"zh": "检索", "en": "Search"},
  "search.query": {"zh": "说了什么", "en": "What was said"},
  "search.placeholder": {"zh": "主播说过的话，例如：假一赔十、包邮、七天无理由", "en": "What the streamer said, e.g. 假一赔十, 包邮, free shipping"},
  "search.submit": {"zh": "搜索", "en": "Search"},
  "search.reset": {"zh": "清空", "en": "Clear"},
  "search.searching": {"zh": "正在搜索…", "en": "Searching…"},

  "filters.legend": {"zh": "筛选", "en": "Filters"},
  "filters.stream": {"zh": "直播", "en": "Stream"},
  "filters.allStreams": {"zh": "全部直播", "en": "All streams"},
  "filters.product": {"zh": "商品", "en": "Product"},
  "filters.claim": {"zh": "承诺类型", "en": "Claim type"},
  "filters.banned": {"zh": "违禁词类别", "en": "Banned-word category"},
  "filters.any": {"zh": "不限", "en": "Any"},
  "filters.since": {"zh": "开始时间", "en": "From"},
  "filters.until": {"zh": "结束时间", "en": "Until"},
  "filters.sort": {"zh": "排序", "en": "Sort by"},
  "filters.sortRelevance": {"zh": "相关度", "en": "Relevance"},
  "filters.sortTime": {"zh": "时间", "en": "Time"},
  "filters.soundAlike": {"zh": "包含同音字结果", "en": "Include sound-alikes"},
  "filters.timezone": {"zh": "时间均为本地时区：{zone}", "en": "Times are in your time zone: {zone}"},
  "filters.live": {"zh": "直播中", "en": "live"},

  "claim.price": {"zh": "价格承诺", "en": "Price"},
  "claim.free_shipping": {"zh": "包邮", "en": "Free shipping"},
  "claim.delivery": {"zh": "发货时效", "en": "Delivery time"},
  "claim.returns": {"zh": "退换货", "en": "Returns"},
  "claim.authenticity": {"zh": "正品保证", "en": "Authenticity"},
  "claim.efficacy": {"zh": "功效", "en": "Efficacy"},
  "claim.material": {"zh": "材质含量", "en": "Material"},
  "claim.giveaway": {"zh": "赠品", "en": "Giveaways"},

  "banned.absolute": {"zh": "绝对化用语", "en": "Absolute terms"},
  "banned.false_price": {"zh": "虚假价格", "en": "False pricing"},
  "banned.medical": {"zh": "医疗用语", "en": "Medical terms"},
  "banned.efficacy": {"zh": "功效断言", "en": "Efficacy claims"},
  "banned.guarantee": {"zh": "保证性承诺", "en": "Guarantees"},
  "banned.superstition": {"zh": "迷信", "en": "Superstition"},
  "banned.state_endorsement": {"zh": "国家机关名义", "en": "State endorsement"},
  "banned.professional_endorsement": {"zh": "专家医生推荐", "en": "Professional endorsement"},

  "results.label": {"zh": "检索结果", "en": "Search results"},
  "results.total": {"zh": "共 {total} 条结果", "en": "Results: {total}"},
  "results.none": {"zh": "没有找到结果。可以换个说法，或放宽筛选条件。", "en": "Nothing found. Try other words or fewer filters."},
  "results.pages": {"zh": "翻页", "en": "Pages"},
  "results.page": {"zh": "第 {page} / {pages} 页", "en": "Page {page} of {pages}"},
  "results.prev": {"zh": "上一页", "en": "Previous"},
  "results.next": {"zh": "下一页", "en": "Next"},
  "results.playTitle": {"zh": "播放这一时刻", "en": "Play this moment"},
  "results.offsetTitle": {"zh": "距直播开始", "en": "Since the stream started"},

  "badge.soundAlike": {"zh": "同音", "en": "sound-alike"},
  "badge.soundAlikeTitle": {"zh": "读音相同或相近：转写可能写成了别的字，请听原声确认", "en": "Sounds the same: the transcript may have spelled it differently; listen to confirm"},
  "badge.product": {"zh": "商品", "en": "Product"},
  "badge.claim": {"zh": "承诺", "en": "Claim"},
  "badge.banned": {"zh": "违禁词", "en": "Banned word"},

  "moment.title": {"zh": "证据片段", "en": "Moment"},
  "moment.empty": {"zh": "点击左侧的结果，从那一刻开始播放。", "en": "Choose a result to play it from that moment."},
  "moment.where": {"zh": "{stream} · {clock} · 开播后 {offset}", "en": "{stream} · {clock} · {offset} into the stream"},
  "moment.loading": {"zh": "正在载入片段…", "en": "Loading the clip…"},

  "player.label": {"zh": "视频片段", "en": "Video clip"},
  "player.unmute": {"zh": "取消静音", "en": "Unmute"},
  "player.mute": {"zh": "静音", "en": "Mute"},
  "player.position": {"zh": "开播后 {offset} · {clock}", "en": "{offset} into the stream · {clock}"},
  "player.blocked": {"zh": "浏览器阻止了自动播放，请点击播放按钮。", "en": "The browser blocked autoplay: press play."},
  "player.error": {"zh": "浏览器无法播放这个片段（媒体错误 {code}）。可以导出证据包查看原始文件。", "en": "The browser cannot play this clip (media error {code}). Export the evidence package to see the original files."},

  "transcript.title": {"zh": "转写文本", "en": "Transcript"},
  "transcript.empty": {"zh": "这一时段没有转写文本。", "en": "No transcript around this moment."},
  "transcript.seek": {"zh": "从这句开始播放", "en": "Play from this utterance"},

  "export.before": {"zh": "之前（秒）", "en": "Seconds before"},
  "export.after": {"zh": "之后（秒）", "en": "Seconds after"},
  "export.button": {"zh": "导出证据包", "en": "Export evidence package"},
  "export.working": {"zh": "正在生成证据包…", "en": "Building the evidence package…"},
  "export.done": {"zh": "已下载 {file}", "en": "Downloaded {file}"},

  "message.close": {"zh": "关闭", "en": "Dismiss"},
  "error.network": {"zh": "无法连接服务器，请检查网络。", "en": "Cannot reach the server; check the connection."},
  "error.http": {"zh": "请求失败（HTTP {status}）", "en": "The request failed (HTTP {status})"}
};
