"""Reference data for the demo store: real Chinese places, carrier hubs, a small product catalogue, names.

Kept apart from the generator so a merchant (or a test) can read what the demo data is made of.
Prices are catalogue data of the demo store, not policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from actions.orders.enums import ItemCategory


@dataclass(frozen=True)
class Place:
    province: str
    city: str
    city_en: str
    districts: tuple[str, ...]
    hub: str  # the regional sorting centre parcels for this city pass through
    weight: int  # relative share of customers living here


PLACES: tuple[Place, ...] = (
    Place("北京", "北京", "Beijing", ("朝阳区", "海淀区", "东城区", "西城区", "丰台区"), "北京", 9),
    Place("上海", "上海", "Shanghai", ("浦东新区", "徐汇区", "静安区", "闵行区", "杨浦区"), "上海", 9),
    Place("天津", "天津", "Tianjin", ("和平区", "南开区", "河西区", "滨海新区"), "北京", 3),
    Place("重庆", "重庆", "Chongqing", ("渝中区", "江北区", "南岸区", "沙坪坝区"), "成都", 4),
    Place("广东", "广州", "Guangzhou", ("天河区", "越秀区", "海珠区", "番禺区"), "广州", 7),
    Place("广东", "深圳", "Shenzhen", ("南山区", "福田区", "宝安区", "龙岗区"), "广州", 7),
    Place("广东", "东莞", "Dongguan", ("南城街道", "东城街道", "长安镇"), "广州", 3),
    Place("广东", "佛山", "Foshan", ("禅城区", "南海区", "顺德区"), "广州", 3),
    Place("浙江", "杭州", "Hangzhou", ("西湖区", "上城区", "拱墅区", "滨江区", "余杭区"), "杭州", 6),
    Place("浙江", "宁波", "Ningbo", ("海曙区", "鄞州区", "江北区"), "杭州", 3),
    Place("浙江", "温州", "Wenzhou", ("鹿城区", "瓯海区", "龙湾区"), "杭州", 2),
    Place("江苏", "南京", "Nanjing", ("玄武区", "鼓楼区", "秦淮区", "建邺区"), "南京", 5),
    Place("江苏", "苏州", "Suzhou", ("姑苏区", "吴中区", "相城区", "虎丘区"), "上海", 4),
    Place("江苏", "无锡", "Wuxi", ("梁溪区", "滨湖区", "新吴区"), "南京", 2),
    Place("湖北", "武汉", "Wuhan", ("武昌区", "江汉区", "洪山区", "汉阳区"), "武汉", 5),
    Place("湖北", "宜昌", "Yichang", ("西陵区", "伍家岗区"), "武汉", 1),
    Place("四川", "成都", "Chengdu", ("锦江区", "武侯区", "青羊区", "成华区"), "成都", 6),
    Place("四川", "绵阳", "Mianyang", ("涪城区", "游仙区"), "成都", 1),
    Place("陕西", "西安", "Xi'an", ("雁塔区", "碑林区", "未央区", "长安区"), "西安", 4),
    Place("湖南", "长沙", "Changsha", ("岳麓区", "芙蓉区", "天心区", "开福区"), "武汉", 4),
    Place("河南", "郑州", "Zhengzhou", ("金水区", "二七区", "中原区"), "郑州", 4),
    Place("河南", "洛阳", "Luoyang", ("西工区", "洛龙区"), "郑州", 1),
    Place("山东", "青岛", "Qingdao", ("市南区", "市北区", "崂山区", "黄岛区"), "济南", 3),
    Place("山东", "济南", "Jinan", ("历下区", "市中区", "槐荫区"), "济南", 3),
    Place("安徽", "合肥", "Hefei", ("蜀山区", "包河区", "庐阳区"), "南京", 3),
    Place("福建", "福州", "Fuzhou", ("鼓楼区", "台江区", "仓山区"), "厦门", 2),
    Place("福建", "厦门", "Xiamen", ("思明区", "湖里区", "集美区"), "厦门", 2),
    Place("辽宁", "沈阳", "Shenyang", ("和平区", "沈河区", "皇姑区"), "沈阳", 2),
    Place("辽宁", "大连", "Dalian", ("中山区", "西岗区", "沙河口区"), "沈阳", 2),
    Place("黑龙江", "哈尔滨", "Harbin", ("南岗区", "道里区", "香坊区"), "沈阳", 2),
    Place("吉林", "长春", "Changchun", ("朝阳区", "南关区", "绿园区"), "沈阳", 1),
    Place("云南", "昆明", "Kunming", ("五华区", "盘龙区", "官渡区"), "成都", 2),
    Place("江西", "南昌", "Nanchang", ("东湖区", "西湖区", "红谷滩区"), "武汉", 2),
    Place("河北", "石家庄", "Shijiazhuang", ("长安区", "桥西区", "裕华区"), "北京", 2),
    Place("河北", "保定", "Baoding", ("竞秀区", "莲池区"), "北京", 1),
    Place("广西", "南宁", "Nanning", ("青秀区", "兴宁区", "西乡塘区"), "广州", 2),
    Place("贵州", "贵阳", "Guiyang", ("南明区", "云岩区", "观山湖区"), "成都", 1),
    Place("山西", "太原", "Taiyuan", ("小店区", "迎泽区", "杏花岭区"), "郑州", 1),
    Place("甘肃", "兰州", "Lanzhou", ("城关区", "七里河区", "安宁区"), "西安", 1),
    Place("海南", "海口", "Haikou", ("龙华区", "美兰区"), "广州", 1),
    Place("宁夏", "银川", "Yinchuan", ("兴庆区", "金凤区"), "西安", 1),
    # Remote provinces of the policy (7-10 business days).
    Place("新疆", "乌鲁木齐", "Urumqi", ("天山区", "沙依巴克区", "新市区"), "乌鲁木齐", 2),
    Place("新疆", "克拉玛依", "Karamay", ("克拉玛依区", "独山子区"), "乌鲁木齐", 1),
    Place("西藏", "拉萨", "Lhasa", ("城关区", "堆龙德庆区"), "西宁", 1),
    Place("青海", "西宁", "Xining", ("城中区", "城西区", "城东区"), "西宁", 1),
    Place("内蒙古", "呼和浩特", "Hohhot", ("新城区", "回民区", "赛罕区"), "北京", 1),
    Place("内蒙古", "包头", "Baotou", ("昆都仑区", "青山区"), "北京", 1),
)

CITY_EN: dict[str, str] = {p.city: p.city_en for p in PLACES}  # every hub is also a customer city

# Warehouses the demo store ships from (city -> English), chosen by region in the generator.
WAREHOUSES: tuple[str, ...] = ("杭州", "广州", "武汉", "北京", "成都")
WAREHOUSE_FOR_HUB: dict[str, str] = {
    "北京": "北京",
    "沈阳": "北京",
    "济南": "北京",
    "郑州": "武汉",
    "西安": "成都",
    "西宁": "成都",
    "乌鲁木齐": "成都",
    "成都": "成都",
    "武汉": "武汉",
    "广州": "广州",
    "厦门": "广州",
    "杭州": "杭州",
    "上海": "杭州",
    "南京": "杭州",
}

STREETS: tuple[str, ...] = (
    "人民路",
    "中山路",
    "解放路",
    "建设路",
    "文化路",
    "长江路",
    "和平路",
    "新华路",
    "青年路",
    "胜利路",
    "北京路",
    "南京路",
    "幸福路",
    "朝阳路",
    "光明路",
    "科技路",
    "学府路",
    "滨江路",
    "东风路",
    "育才路",
)
COMPOUNDS: tuple[str, ...] = (
    "阳光花园",
    "锦绣家园",
    "翠苑小区",
    "金色家园",
    "世纪花城",
    "万科城",
    "绿城桂花园",
    "碧桂园",
    "龙湖春江郦城",
    "保利香槟国际",
    "幸福里",
    "滨江花园",
)

SURNAMES: tuple[str, ...] = (
    "王",
    "李",
    "张",
    "刘",
    "陈",
    "杨",
    "黄",
    "赵",
    "吴",
    "周",
    "徐",
    "孙",
    "马",
    "朱",
    "胡",
    "郭",
    "何",
    "林",
    "高",
    "罗",
    "郑",
    "梁",
    "谢",
    "宋",
    "唐",
    "许",
    "韩",
    "冯",
    "邓",
    "曹",
    "彭",
    "曾",
    "欧阳",
    "司马",
)
GIVEN_NAME_CHARS: tuple[str, ...] = (
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀",
    "霞",
    "平",
    "刚",
    "桂",
    "英",
    "华",
    "鹏",
    "辉",
    "玲",
    "婷",
    "雪",
    "晨",
    "宇",
    "欣",
    "浩",
    "然",
    "子",
    "轩",
    "雨",
    "涵",
    "思",
    "佳",
    "博",
    "文",
    "嘉",
    "怡",
)

# Real mobile number prefixes (China Mobile / Unicom / Telecom).
PHONE_PREFIXES: tuple[str, ...] = (
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "182",
    "183",
    "187",
    "188",
    "130",
    "131",
    "132",
    "155",
    "156",
    "185",
    "186",
    "176",
    "133",
    "153",
    "180",
    "181",
    "189",
    "177",
    "199",
)


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: ItemCategory
    price_yuan: int
    weight: int  # relative popularity


PRODUCTS: tuple[Product, ...] = (
    Product("AP-1001", "男士纯棉圆领T恤", ItemCategory.APPAREL, 79, 8),
    Product("AP-1002", "女士羊毛针织开衫", ItemCategory.APPAREL, 259, 5),
    Product("AP-1003", "轻薄白鸭绒羽绒服", ItemCategory.APPAREL, 499, 4),
    Product("AP-1004", "直筒弹力牛仔裤", ItemCategory.APPAREL, 189, 6),
    Product("SH-2001", "缓震透气运动跑鞋", ItemCategory.SHOES, 399, 5),
    Product("SH-2002", "经典低帮帆布鞋", ItemCategory.SHOES, 129, 4),
    Product("EL-3001", "降噪蓝牙耳机", ItemCategory.ELECTRONICS, 299, 6),
    Product("EL-3002", "20000mAh快充移动电源", ItemCategory.ELECTRONICS, 129, 6),
    Product("EL-3003", "87键机械键盘", ItemCategory.ELECTRONICS, 349, 3),
    Product("EL-3004", "心率监测智能手环", ItemCategory.ELECTRONICS, 229, 4),
    Product("HM-4001", "全棉四件套床品", ItemCategory.HOME, 269, 4),
    Product("HM-4002", "316不锈钢保温杯", ItemCategory.HOME, 89, 7),
    Product("HM-4003", "麦饭石不粘炒锅", ItemCategory.HOME, 159, 4),
    Product("HM-4004", "可折叠收纳箱三件套", ItemCategory.HOME, 49, 6),
    Product("BT-5001", "玻尿酸保湿面霜", ItemCategory.BEAUTY, 168, 5),
    Product("BT-5002", "氨基酸洁面乳", ItemCategory.BEAUTY, 69, 6),
    Product("BT-5003", "丝绒哑光口红", ItemCategory.BEAUTY, 199, 4),
    Product("BK-6001", "《三体》典藏版全集", ItemCategory.BOOKS, 93, 4),
    Product("BK-6002", "儿童科普绘本套装", ItemCategory.BOOKS, 128, 3),
    Product("SN-7001", "每日坚果礼盒", ItemCategory.SNACKS, 98, 6),
    Product("SN-7002", "云南小粒挂耳咖啡", ItemCategory.SNACKS, 59, 5),
    Product("SN-7003", "内蒙古风干牛肉干", ItemCategory.SNACKS, 45, 4),
    Product("CU-8001", "定制刻字钢笔", ItemCategory.CUSTOMISED, 239, 2),
    Product("CU-8002", "定制照片抱枕", ItemCategory.CUSTOMISED, 89, 2),
    Product("CU-8003", "定制印字文化衫", ItemCategory.CUSTOMISED, 119, 2),
    Product("FF-9001", "阳澄湖大闸蟹礼盒", ItemCategory.FRESH_FOOD, 388, 2),
    Product("FF-9002", "智利车厘子2kg", ItemCategory.FRESH_FOOD, 199, 3),
    Product("FF-9003", "冰鲜三文鱼刺身", ItemCategory.FRESH_FOOD, 158, 2),
    Product("UW-1101", "男士莫代尔内裤三条装", ItemCategory.UNDERWEAR, 79, 3),
    Product("UW-1102", "女士无钢圈文胸", ItemCategory.UNDERWEAR, 139, 3),
    Product("UW-1103", "德绒保暖内衣套装", ItemCategory.UNDERWEAR, 169, 3),
    Product("DG-1201", "视频会员年卡", ItemCategory.DIGITAL, 198, 2),
    Product("DG-1202", "正版杀毒软件激活码", ItemCategory.DIGITAL, 99, 1),
    Product("DG-1203", "电子书阅读充值卡", ItemCategory.DIGITAL, 50, 1),
)

SIGNED_BY_ZH: tuple[str, ...] = ("本人签收", "家人代收", "快递柜代收", "驿站代收", "前台代收")
SIGNED_BY_EN: dict[str, str] = {
    "本人签收": "signed by the recipient",
    "家人代收": "signed by a family member",
    "快递柜代收": "left in a parcel locker",
    "驿站代收": "left at a pickup station",
    "前台代收": "signed by reception",
}
DELAY_CAUSES: tuple[tuple[str, str], ...] = (
    ("受天气影响，快件运输延误", "Delayed by weather"),
    ("转运中心包裹积压，正在加急处理", "Backlog at the sorting centre, being expedited"),
    ("运力紧张，快件将延后派送", "Limited capacity, delivery postponed"),
    ("道路管制，快件中转延误", "Road restrictions delayed the transfer"),
)
